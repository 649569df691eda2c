--[[ nlgate.rules.long_lived: connections older than an age.

Detects: a conntrack flow or an established TCP socket older than `age`,
once per connection (alert.<name> firing; no resolve: the connection's
end is not an event worth a frame). Checked every `check` on a timer.

Age: a conntrack flow's start_ns when the kernel keeps timestamps
(nf_conntrack_timestamp=1), otherwise when this rule first saw it (its
NEW event, or the start-up dump: then the age is a lower bound). Sockets
carry no age, so a socket's age is since this rule first saw it in a poll
(again a lower bound for sockets older than nlgate); a socket missing from
a poll is forgotten.

Records: ct (new/destroy events; dump records), sock (ESTAB).

Options (defaults):
  name         "long_lived"
  age          "1h"
  check        "1m"
  max_tracked  100000     connections tracked at most (more are ignored,
                          counted in rule.ignored)
  severity     "info"; every; on_alert

Alert alert.<name>, key = "ct/<id>" or "sock/<cookie>": kind, proto,
src, sport, dst, dport, age (seconds), started (seconds since the epoch).
]]
local gw = require "nlgate"
local rules = require "nlgate.rules"

local M = {}
M.defaults = { age = "1h", check = "1m", max_tracked = 100000 }

function M.new(opts)
  local o = rules.options("long_lived", M.defaults, opts)
  if not (opts and opts.severity) then o.severity = "info" end
  local self = rules.object(M, o)
  self.age = rules.seconds(o.age)
  self.conns, self.n, self.ignored, self.polls = {}, 0, 0, 0
  self.timer = gw.every(o.check, function() self:look() end)
  return self
end

function M:track(key, since, proto, src, sport, dst, dport, kind)
  if self.conns[key] then return self.conns[key] end
  if self.n >= self.opts.max_tracked then
    self.ignored = self.ignored + 1
    return nil
  end
  self.n = self.n + 1
  local c = { since = since, proto = proto, src = src, sport = sport, dst = dst,
              dport = dport, kind = kind }
  self.conns[key] = c
  return c
end

function M:forget(key)
  if self.conns[key] then
    self.conns[key] = nil
    self.n = self.n - 1
  end
end

function M:ct(e)
  local key = "ct/" .. e.id
  if e.event == "destroy" then return self:forget(key) end
  local start = e.start_ns
  self:track(key, start and start / 1e9 or gw.now(), e.proto, e.orig_src, e.orig_sport,
             e.orig_dst, e.orig_dport, "ct")
end

function M:sock(s)
  if s.state ~= "ESTAB" or s.proto ~= "tcp" then return end
  local c = self:track("sock/" .. s.cookie, gw.now(), s.proto, s.src, s.sport, s.dst,
                       s.dport, "sock")
  if c then c.poll = self.polls end
end

function M:done(kind)
  if kind ~= "sock" then return end
  -- sockets have no end event: one missing from this poll is gone
  local gone = {}
  for key, c in pairs(self.conns) do
    if c.kind == "sock" and c.poll ~= self.polls then gone[#gone + 1] = key end
  end
  for _, key in ipairs(gone) do self:forget(key) end
  self.polls = self.polls + 1
end

function M:look()
  local now, o = gw.now(), self.opts
  for key, c in pairs(self.conns) do
    local age = now - c.since
    if not c.alerted and age >= self.age then
      c.alerted = true
      rules.alert(o, key, string.format("%s %s -> %s open for %d s", c.proto or "?",
                                        rules.endpoint(c.src, c.sport),
                                        rules.endpoint(c.dst, c.dport), math.floor(age)),
                  { kind = c.kind, proto = c.proto, src = c.src, sport = c.sport, dst = c.dst,
                    dport = c.dport, age = math.floor(age), started = c.since })
    end
  end
end

return M
