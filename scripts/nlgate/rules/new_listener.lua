--[[ nlgate.rules.new_listener: a listening port not seen while learning.

Detects: a TCP LISTEN socket (and, with `udp`, a bound UDP socket) on a
protocol/port that was not listening during the learning period: every
port seen in the first poll, and in any poll within `learn` of it, is the
baseline. After that, a new one raises one alert and joins the baseline.
The baseline lives in gw.state, so a reload (SIGHUP) keeps it.

Records: sock (state LISTEN; UNCONN for udp).

Options (defaults):
  name      "new_listener"
  learn     "10m"        the learning period, from the first record
  allow     {}           ports never alerted on: { 22, "8000-8099" }
  udp       false        bound UDP sockets (state UNCONN, no peer) count too
  severity  "warning"; every; on_alert

Alert alert.<name>, key = "proto/port" (firing only): proto, port, src
(the address it listens on), uid, inode.
]]
local gw = require "nlgate"
local rules = require "nlgate.rules"

local M = {}
M.defaults = { learn = "10m", allow = {}, udp = false }

function M.new(opts)
  local o = rules.options("new_listener", M.defaults, opts)
  local self = rules.object(M, o)
  self.learn = rules.seconds(o.learn)
  self.allowed = rules.ports(o.allow)
  gw.state.new_listener = gw.state.new_listener or {}
  local st = gw.state.new_listener[o.name] or { known = {} }
  gw.state.new_listener[o.name] = st
  self.st = st
  return self
end

function M:sock(s)
  local state, proto = s.state, s.proto
  if not (state == "LISTEN" or (self.opts.udp and proto == "udp" and state == "UNCONN")) then
    return
  end
  local key = proto .. "/" .. s.sport
  local st = self.st
  if st.known[key] then return end
  local now = gw.now()
  if not st.start then st.start = now end
  st.known[key] = true
  if not st.learned then
    if not st.polled or now - st.start < self.learn then return end
    st.learned = true
  end
  if self.allowed(s.sport) then return end
  rules.alert(self.opts, key,
              string.format("new listening port %s on %s", key, rules.endpoint(s.src, s.sport)),
              { proto = proto, port = s.sport, src = s.src, uid = s.uid, inode = s.inode })
end

function M:done(kind)
  if kind == "sock" and self.st.start then self.st.polled = true end
end

return M
