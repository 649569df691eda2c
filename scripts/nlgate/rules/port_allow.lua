--[[ nlgate.rules.port_allow: flows to ports outside an allow-list.

Detects: a flow (packets source, flow records) or a new conntrack flow
whose destination port is not in `allow`, for the protocols in `protos`.
One alert per protocol/destination/port, rate-limited by `every`.

Records: flow; ct (new events and dump records).

Options (defaults):
  name      "port_allow"
  allow     { 22, 53, 80, 123, 443 }    ports or "lo-hi" ranges
  protos    { "tcp", "udp" }
  severity  "warning"; every ("1h"); on_alert

Alert alert.<name>, key = "proto/dst:dport": proto, src, dst, dport.
]]
local rules = require "nlgate.rules"

local M = {}
M.defaults = { allow = { 22, 53, 80, 123, 443 }, protos = { "tcp", "udp" } }

function M.new(opts)
  local o = rules.options("port_allow", M.defaults, opts)
  if o.every == nil then o.every = "1h" end
  local self = rules.object(M, o)
  self.allowed = rules.ports(o.allow)
  self.protos = {}
  for _, p in ipairs(type(o.protos) == "string" and { o.protos } or o.protos) do
    self.protos[p] = true
  end
  return self
end

function M:check(proto, src, dst, dport)
  if not dport or not self.protos[proto] or self.allowed(dport) then return end
  local where = rules.endpoint(dst, dport)
  rules.alert(self.opts, proto .. "/" .. where,
              string.format("%s flow from %s to %s: port not allowed", proto, src or "?", where),
              { proto = proto, src = src, dst = dst, dport = dport })
end

function M:flow(f)
  self:check(f.proto, f.src, f.dst, f.dport)
end

function M:ct(e)
  if e.event ~= "new" then return end
  self:check(e.proto, e.orig_src, e.orig_dst, e.orig_dport)
end

return M
