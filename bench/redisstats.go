package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// scriptCommands are the commands that sessiongate's Lua scripts call.
// Redis counts a command called from a script in INFO commandstats as well
// as the EVALSHA around it, so these are left out when counting round
// trips. NOTE: a client that sent one of them directly would be missed;
// sessiongate's request path sends only EVALSHA and, when Redis lacks the
// script, EVAL.
var scriptCommands = map[string]bool{
	"hmget": true, "hget": true, "hset": true, "pexpire": true, "pttl": true,
	"zadd": true, "exists": true, "get": true, "set": true, "del": true,
	"zrem": true, "zremrangebyscore": true, "zcard": true, "zrange": true,
}

// benchCommands are the commands the benchmark itself sends while it
// measures.
var benchCommands = map[string]bool{"info": true}

// commandCounts maps a command name to its INFO commandstats calls. The
// key "usec:" plus a name holds the command's total time in microseconds.
type commandCounts map[string]int64

func readCommandCounts(ctx context.Context, c *redis.Client) (commandCounts, error) {
	raw, err := c.Info(ctx, "commandstats").Result()
	if err != nil {
		return nil, fmt.Errorf("read redis commandstats: %w", err)
	}
	out := commandCounts{}
	for _, line := range strings.Split(raw, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_")
		if !ok {
			continue
		}
		name, stats, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		for _, kv := range strings.Split(stats, ",") {
			if v, ok := strings.CutPrefix(kv, "calls="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out[name] = n
			}
			if v, ok := strings.CutPrefix(kv, "usec="); ok {
				n, _ := strconv.ParseInt(v, 10, 64)
				out["usec:"+name] = n
			}
		}
	}
	return out, nil
}

// roundTrips returns the commands clients sent between before and after:
// every call except those made inside scripts and the benchmark's own.
func roundTrips(before, after commandCounts) int64 {
	var n int64
	for name, calls := range after {
		if scriptCommands[name] || benchCommands[name] || strings.HasPrefix(name, "usec:") {
			continue
		}
		n += calls - before[name]
	}
	return n
}

// infoField returns one numeric field of an INFO section.
func infoField(ctx context.Context, c *redis.Client, section, field string) (int64, error) {
	raw, err := c.Info(ctx, section).Result()
	if err != nil {
		return 0, fmt.Errorf("read redis INFO %s: %w", section, err)
	}
	for _, line := range strings.Split(raw, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), field+":"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("redis INFO %s has no field %s", section, field)
}

// scriptTime returns the time Redis spent running scripts between before
// and after, the commands they call included.
func scriptTime(before, after commandCounts) time.Duration {
	var us int64
	for _, name := range []string{"evalsha", "eval"} {
		us += after["usec:"+name] - before["usec:"+name]
	}
	return time.Duration(us) * time.Microsecond
}
