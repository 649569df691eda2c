--[[ nlgate.rules.half_open: half-open (SYN-RECV) connections building up.

Detects: a local port with more than `above` sockets in SYN-RECV in one
poll (a SYN flood, or a server that cannot finish handshakes); resolves
below `clear`. The sockets source must dump SYN-RECV sockets (its default
states, "all", do).

Records: sock (state SYN-RECV).

Options (defaults):
  name      "half_open"
  above     100          half-open sockets on one port in a poll
  clear     above / 2
  hold      nil          how long either must hold first ("30s")
  expire    "5m"         a key not updated this long resolves (reason
                         "expired"): polls that bring no record at all
  severity  "warning"; every; on_alert

Alert alert.<name>, key = the local port: value (the count), port, count.
]]
local rules = require "nlgate.rules"

local M = {}
M.defaults = { above = 100, clear = false, hold = false, expire = "5m" }

function M.new(opts)
  local o = rules.options("half_open", M.defaults, opts)
  o.clear = o.clear or o.above / 2
  local self = rules.object(M, o)
  self.threshold = rules.threshold(o)
  self.count = {}
  return self
end

function M:sock(s)
  if s.state == "SYN-RECV" then
    local port = s.sport
    self.count[port] = (self.count[port] or 0) + 1
  end
end

function M:done(kind)
  if kind ~= "sock" then return end
  for port, n in pairs(self.count) do
    self.threshold:update(port, n, { port = port, count = n })
  end
  rules.sweep(self.threshold, self.count)
  self.count = {}
end

return M
