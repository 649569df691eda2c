--[[ nlgate.rules.ct_pressure: the conntrack table filling up.

Detects: flows in the conntrack table above `above` of the kernel's limit
(net.netfilter.nf_conntrack_max, which the conntrack source reports as
stats().max); past the limit the kernel drops new connections ("table
full, dropping packet"). Checked every `check` on a timer; resolves below
`clear`.

The flow count is the source's own table (stats().live, repaired by
resync), or with `count = "events"` a count kept from the events this
rule sees (new +1, destroy -1): that needs events "new,destroy" and is
what a testing pipeline, whose fake source keeps no table, can drive.

Records: ct (only with count = "events"); needs the conntrack source.

Options (defaults):
  name      "ct_pressure"
  above     0.8          fraction of the limit
  clear     0.7
  hold      nil          how long either must hold first ("30s")
  check     "10s"        how often to look
  max       nil          the limit, instead of the source's stats().max
  count     "stats"      "stats" (the source's live flows) or "events"
  key       nil          the alert key (default: the source's netns, or "host")
  severity  "warning"; every; on_alert

Alert alert.<name>, key = netns or "host": value (the fraction), flows,
max, percent.
]]
local gw = require "nlgate"
local rules = require "nlgate.rules"

local M = {}
M.defaults = { above = 0.8, clear = 0.7, hold = false, check = "10s", max = false,
               count = "stats", key = false }

function M.new(opts)
  local o = rules.options("ct_pressure", M.defaults, opts)
  if o.count ~= "stats" and o.count ~= "events" then
    error("ct_pressure: bad count '" .. tostring(o.count) .. "' (stats, events)", 2)
  end
  local self = rules.object(M, o)
  self.threshold = rules.threshold(o)
  self.flows = 0
  return self
end

function M:attach(src)
  self.src = src
  self.timer = gw.every(self.opts.check, function() self:look() end)
end

function M:ct(e)
  if self.opts.count ~= "events" then return end
  local ev = e.event
  if ev == "new" then
    self.flows = self.flows + 1
  elseif ev == "destroy" and self.flows > 0 then
    self.flows = self.flows - 1
  end
end

-- One look at the table: flows / max through the threshold.
function M:look()
  local o = self.opts
  local st = self.src and self.src:stats() or {}
  local flows = o.count == "events" and self.flows or st.live
  local max = o.max or st.max
  if not flows or not max or max == 0 then
    if not self.warned then
      self.warned = true
      gw.log(o.name .. ": no table limit known (give max = N): not checking")
    end
    return
  end
  local key = o.key or (st.netns and st.netns ~= "" and st.netns) or "host"
  local ratio = flows / max
  self.threshold:update(key, ratio, { flows = flows, max = max,
                                      percent = math.floor(ratio * 1000 + 0.5) / 10 })
end

return M
