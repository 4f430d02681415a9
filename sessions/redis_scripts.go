package sessions

import "github.com/redis/go-redis/v9"

// Key layout, below the configured prefix P and the user's hash tag {T}:
//
//	P{T}:s:ID   hash  session: u user id, e email, c created ms, x token exp ms, a absolute deadline ms (0 none)
//	P{T}:m:ID   hash  metadata: l last activity ms, ip, ua, mt method, p path, g last activity log ms
//	P{T}:i      zset  index: session id scored by idle expiry ms
//	P{T}:r:ID   str   revocation marker, until the token's exp
//	P{T}:rb     str   "revoked before" instant ms of the user
//	Psweep:lock str   sweep lock owner
//	Psweep:last str   last sweep report, JSON
//
// Every key of one user shares the tag, so each script below touches one
// Cluster slot. Scripts build the keys of other sessions of the same user
// from the base "P{T}:" passed in ARGV; those share the slot too.

// luaRevokeOne deletes one session with its metadata and index entry and
// writes its revocation marker. It expects now, leeway and markerCap locals.
const luaRevokeOne = `
local function revokeOne(base, sid)
  local skey = base .. 's:' .. sid
  local exp = tonumber(redis.call('HGET', skey, 'x') or '0') or 0
  redis.call('DEL', skey, base .. 'm:' .. sid)
  redis.call('ZREM', base .. 'i', sid)
  local ttl = markerCap
  if exp > 0 then
    ttl = exp - now + leeway
    if ttl > markerCap then ttl = markerCap end
  end
  if ttl > 0 then
    redis.call('SET', base .. 'r:' .. sid, '1', 'PX', ttl)
  end
end
`

// accessScript implements Store.Access. KEYS: s, m, i, r, rb. ARGV: see
// RedisStore.Access. It returns {status, reason, created, last, prevIP,
// prevUA, logActivity, ip, ua, method, path, email, expires, evicted...}.
var accessScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local life = tonumber(ARGV[2])
local abs = tonumber(ARGV[3])
local leeway = tonumber(ARGV[5])
local markerCap = tonumber(ARGV[19])
local base = ARGV[20]
local sid = ARGV[21]
local skey, mkey, ikey = KEYS[1], KEYS[2], KEYS[3]
` + luaRevokeOne + `
local function index(ttl)
  redis.call('ZADD', ikey, now + ttl, sid)
  if redis.call('PTTL', ikey) < ttl then
    redis.call('PEXPIRE', ikey, ttl)
  end
end

local sess = redis.call('HMGET', skey, 'c', 'a', 'e')
if sess[1] then
  local created = tonumber(sess[1])
  local deadline = tonumber(sess[2]) or 0
  local ttl = life
  if deadline > 0 and deadline - now < ttl then
    ttl = deadline - now
    if ttl <= 0 then
      redis.call('DEL', skey, mkey)
      redis.call('ZREM', ikey, sid)
      return {3, 'absolute_lifetime'}
    end
  end

  local meta = redis.call('HMGET', mkey, 'l', 'ip', 'ua', 'g', 'mt', 'p')
  local ipChanged = meta[2] and meta[2] ~= ARGV[10]
  local uaChanged = meta[3] and meta[3] ~= ARGV[11]
  local prevIP, prevUA = '', ''
  if ipChanged then prevIP = meta[2] end
  if uaChanged then prevUA = meta[3] end
  if ipChanged and ARGV[16] == '1' then
    revokeOne(base, sid)
    return {4, 'ip_changed', created, 0, prevIP, prevUA}
  end
  if uaChanged and ARGV[17] == '1' then
    revokeOne(base, sid)
    return {4, 'user_agent_changed', created, 0, prevIP, prevUA}
  end

  local last = tonumber(meta[1]) or 0
  local method, path = meta[5] or '', meta[6] or ''
  if ipChanged or uaChanged or not meta[1] or now - last >= tonumber(ARGV[14]) then
    redis.call('HSET', mkey, 'l', now, 'ip', ARGV[10], 'ua', ARGV[11], 'mt', ARGV[12], 'p', ARGV[13])
    last, method, path = now, ARGV[12], ARGV[13]
  end
  local logActivity = 0
  if now - (tonumber(meta[4]) or 0) >= tonumber(ARGV[15]) then
    redis.call('HSET', mkey, 'g', now)
    logActivity = 1
  end
  redis.call('PEXPIRE', skey, ttl)
  redis.call('PEXPIRE', mkey, ttl)
  index(ttl)
  return {1, '', created, last, prevIP, prevUA, logActivity, ARGV[10], ARGV[11], method, path, sess[3] or '', now + ttl}
end

if redis.call('EXISTS', KEYS[4]) == 1 then
  return {4, 'revoked'}
end
local iat = tonumber(ARGV[6])
if iat == 0 then iat = now end
local revokedBefore = tonumber(redis.call('GET', KEYS[5]) or '0') or 0
-- iat has whole seconds: a token whose iat equals the instant, truncated to
-- the second, may have been issued before it, so it is rejected too.
if revokedBefore > 0 and iat <= revokedBefore then
  return {4, 'revoked_before'}
end
-- No leeway here: with it, a session that just went idle would be created
-- again by its own token, and idle expiry could be undone.
-- NOTE: an issuer whose clock runs ahead (iat in the future, which the
-- verifier allows within JWT_LEEWAY) still stretches the window by that
-- skew; keep the issuer's clock synchronized.
if now - iat > tonumber(ARGV[4]) then
  return {3, 'create_window'}
end
-- A session of this token created earlier has reached its absolute
-- deadline by now, and its key expired with it: creating it again would
-- extend the session past its limit.
if abs > 0 and now - iat + leeway >= abs then
  return {3, 'absolute_lifetime'}
end

local ttl, deadline = life, 0
if abs > 0 then
  deadline = now + abs
  if abs < ttl then ttl = abs end
end
local evicted = {}
local maxPerUser = tonumber(ARGV[18])
-- NOTE: victims are the soonest to expire. That is the least recently
-- active session unless AbsoluteLifetime cut a session's TTL short.
if maxPerUser > 0 then
  -- Drop index entries whose session is gone. Their score alone would do
  -- on one clock, but replicas' clocks differ from Redis's, and a live
  -- session dropped from the index would escape RevokeUser.
  for _, old in ipairs(redis.call('ZRANGEBYSCORE', ikey, '-inf', now)) do
    if redis.call('EXISTS', base .. 's:' .. old) == 0 then
      redis.call('ZREM', ikey, old)
    end
  end
  local n = redis.call('ZCARD', ikey)
  if n >= maxPerUser then
    for _, victim in ipairs(redis.call('ZRANGE', ikey, 0, n - maxPerUser)) do
      revokeOne(base, victim)
      table.insert(evicted, victim)
    end
  end
end
redis.call('HSET', skey, 'u', ARGV[8], 'e', ARGV[9], 'c', now, 'x', ARGV[7], 'a', deadline)
redis.call('PEXPIRE', skey, ttl)
redis.call('HSET', mkey, 'l', now, 'ip', ARGV[10], 'ua', ARGV[11], 'mt', ARGV[12], 'p', ARGV[13], 'g', now)
redis.call('PEXPIRE', mkey, ttl)
index(ttl)
local out = {2, '', now, now, '', '', 1, ARGV[10], ARGV[11], ARGV[12], ARGV[13], ARGV[9], now + ttl}
for _, victim in ipairs(evicted) do table.insert(out, victim) end
return out
`)

// revokeScript implements Store.Revoke. KEYS: s. ARGV: now, leeway,
// markerCap, base, sid. It returns 1 when a live session was revoked.
var revokeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local leeway = tonumber(ARGV[2])
local markerCap = tonumber(ARGV[3])
local base, sid = ARGV[4], ARGV[5]
` + luaRevokeOne + `
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('ZREM', base .. 'i', sid)
  redis.call('DEL', base .. 'm:' .. sid)
  return 0
end
revokeOne(base, sid)
return 1
`)

// revokeUserScript implements Store.RevokeUser. KEYS: i, rb. ARGV: now,
// leeway, markerCap, base, revokedBeforeTTL. It returns the number of live
// sessions revoked.
var revokeUserScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local leeway = tonumber(ARGV[2])
local markerCap = tonumber(ARGV[3])
local base = ARGV[4]
` + luaRevokeOne + `
local n = 0
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  if redis.call('EXISTS', base .. 's:' .. sid) == 1 then
    revokeOne(base, sid)
    n = n + 1
  else
    redis.call('ZREM', KEYS[1], sid)
    redis.call('DEL', base .. 'm:' .. sid)
  end
end
local old = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if old > now then now = old end
redis.call('SET', KEYS[2], now, 'PX', ARGV[5])
return n
`)
