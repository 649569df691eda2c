--[[ nlgate.rules.accept_queue: a listener's accept queue near overflow.

Detects: a TCP listener whose accept queue (rqueue: connections the
kernel completed that the application has not accepted) is above `above`
of its backlog limit (wqueue); past the limit the kernel drops new
connections. Resolves below `clear`, or when the listener is gone.

Records: sock (state LISTEN).

Options (defaults):
  name      "accept_queue"
  above     0.9          fraction of the backlog limit
  clear     0.5
  hold      nil          how long either must hold first ("30s")
  expire    "5m"         a key not updated this long resolves (reason
                         "expired"): polls that bring no record at all
  severity  "warning"; every; on_alert

Alert alert.<name>, key = "addr:port" of the listener: value (the
fraction), addr, port, queued, limit.
]]
local rules = require "nlgate.rules"

local M = {}
M.defaults = { above = 0.9, clear = 0.5, hold = false, expire = "5m" }

function M.new(opts)
  local o = rules.options("accept_queue", M.defaults, opts)
  local self = rules.object(M, o)
  self.threshold = rules.threshold(o)
  self.seen = {}
  return self
end

function M:sock(s)
  if s.state ~= "LISTEN" or s.proto ~= "tcp" then return end
  local limit = s.wqueue
  if not limit or limit == 0 then return end
  local key = rules.endpoint(s.src, s.sport)
  self.seen[key] = true
  self.threshold:update(key, s.rqueue / limit, { addr = s.src, port = s.sport,
                                                 queued = s.rqueue, limit = limit })
end

function M:done(kind)
  if kind ~= "sock" then return end
  rules.sweep(self.threshold, self.seen)
  self.seen = {}
end

return M
