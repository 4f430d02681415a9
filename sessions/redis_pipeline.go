package sessions

import (
	"context"
	"runtime"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// maxPipelineBatch bounds how many Access scripts one pipeline carries.
const maxPipelineBatch = 128

// defaultPipelineTimeout bounds a batch whose callers set no deadline.
const defaultPipelineTimeout = 3 * time.Second

// accessPipeline sends the Access scripts of concurrent requests to Redis
// together. Each sender goroutine takes every call waiting in the queue,
// writes them as one pipeline and reads the replies, so under load one
// write and one read system call on each side serve many requests instead
// of one. A call alone in the queue goes out at once. Every call is still
// one EVALSHA, atomic on its own; calls in one batch are independent.
type accessPipeline struct {
	client redis.UniversalClient
	queue  chan *accessCall

	// mu guards closed, so that no call enters the queue after Close has
	// started draining it.
	mu     sync.RWMutex
	closed bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

// accessCall is one Access waiting for its reply. The sender writes reply
// and err before closing done.
type accessCall struct {
	ctx   context.Context
	keys  []string
	args  []any
	reply []any
	err   error
	done  chan struct{}
}

// newAccessPipeline starts one sender per CPU, at least two, so that a
// batch can be built while the previous one is in flight.
func newAccessPipeline(client redis.UniversalClient) *accessPipeline {
	p := &accessPipeline{
		client: client,
		queue:  make(chan *accessCall, 4*maxPipelineBatch),
		stop:   make(chan struct{}),
	}
	for range max(2, runtime.GOMAXPROCS(0)) {
		p.wg.Go(p.run)
	}
	return p
}

// do runs the Access script with keys and args and returns its reply, or
// ctx's error when ctx ends first. The script may still run after that, as
// a command on a timed-out connection may.
func (p *accessPipeline) do(ctx context.Context, keys []string, args []any) ([]any, error) {
	c := &accessCall{ctx: ctx, keys: keys, args: args, done: make(chan struct{})}
	p.mu.RLock()
	if p.closed {
		p.mu.RUnlock()
		return nil, redis.ErrClosed
	}
	select {
	case p.queue <- c:
	case <-ctx.Done():
		p.mu.RUnlock()
		return nil, ctx.Err()
	}
	p.mu.RUnlock()

	select {
	case <-c.done:
		return c.reply, c.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// close stops the senders once every queued call has its reply. Calls made
// afterwards fail with redis.ErrClosed.
func (p *accessPipeline) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.mu.Unlock()
	close(p.stop)
	p.wg.Wait()
}

func (p *accessPipeline) run() {
	batch := make([]*accessCall, 0, maxPipelineBatch)
	for {
		select {
		case c := <-p.queue:
			batch = append(batch[:0], c)
		case <-p.stop:
			// No call can enter the queue now, so send those still in it.
			for {
				select {
				case c := <-p.queue:
					p.send([]*accessCall{c})
				default:
					return
				}
			}
		}
	fill:
		for len(batch) < maxPipelineBatch {
			select {
			case c := <-p.queue:
				batch = append(batch, c)
			default:
				break fill
			}
		}
		p.send(batch)
	}
}

// send runs batch as one pipeline. Calls whose context already ended get
// its error and are not sent. The pipeline gets the latest
// deadline of the calls in it, because each caller stops waiting at its
// own deadline anyway.
func (p *accessPipeline) send(batch []*accessCall) {
	live := batch[:0:0]
	var deadline time.Time
	for _, c := range batch {
		if err := c.ctx.Err(); err != nil {
			c.err = err
			close(c.done)
			continue
		}
		live = append(live, c)
		d, ok := c.ctx.Deadline()
		if !ok {
			d = time.Now().Add(defaultPipelineTimeout)
		}
		if d.After(deadline) {
			deadline = d
		}
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if len(live) == 1 {
		// A pipeline of one costs more than the plain command.
		c := live[0]
		c.reply, c.err = accessScript.Run(ctx, p.client, c.keys, c.args...).Slice()
		close(c.done)
		return
	}

	cmds := make([]*redis.Cmd, len(live))
	pipe := p.client.Pipeline()
	for i, c := range live {
		cmds[i] = accessScript.EvalSha(ctx, pipe, c.keys, c.args...)
	}
	_, _ = pipe.Exec(ctx)

	// Redis loses its script cache on restart or SCRIPT FLUSH; send the
	// script's text once more for the calls that found it missing.
	var missing []int
	for i, cmd := range cmds {
		if redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
			missing = append(missing, i)
		}
	}
	if len(missing) > 0 {
		pipe := p.client.Pipeline()
		for _, i := range missing {
			cmds[i] = accessScript.Eval(ctx, pipe, live[i].keys, live[i].args...)
		}
		_, _ = pipe.Exec(ctx)
	}

	for i, c := range live {
		c.reply, c.err = cmds[i].Slice()
		close(c.done)
	}
}
