--[[ nlgate.rules.field_threshold: any numeric field against a threshold.

Detects: a record whose `field` is above `above` (or below `below`), per
key (fields of the record joined with space), with hysteresis (`clear`)
and an optional hold. A key not seen in a poll resolves. The building block
for one-off rules: unread receive queues, a cwnd collapse, ...

Records: any kind (`kind`, default "sock").

Options (defaults):
  name      (required)   the alert's name
  field     (required)   the numeric field
  kind      "sock"
  key       { "src", "sport", "dst", "dport" }   fields naming the key
  where     nil          function(r) -> bool: only these records
  above / below, clear, hold
  expire    "5m"         a key not updated this long resolves (reason
                         "expired"): polls that bring no record at all
  severity  "warning"; every; on_alert

Alert alert.<name>, key = the key fields' values joined by " ": value,
and each key field.
]]
local rules = require "nlgate.rules"

local M = {}
M.defaults = { field = false, kind = "sock", key = { "src", "sport", "dst", "dport" },
               where = false, above = false, below = false, clear = false, hold = false,
               expire = "5m" }

function M.new(opts)
  local o = rules.options("field_threshold", M.defaults, opts)
  if not (opts and opts.name) or not o.field then
    error("field_threshold: name and field are required", 2)
  end
  if not o.above and not o.below then error("field_threshold: above or below is required", 2) end
  local self = rules.object(M, o)
  self.threshold = rules.threshold(o)
  self.seen = {}
  self.keys = type(o.key) == "table" and o.key or { o.key }
  self[o.kind] = M.record
  return self
end

function M:record(r)
  local o = self.opts
  if o.where and not o.where(r) then return end
  local v = r[o.field]
  if v == nil then return end
  local parts, fields = {}, {}
  for i, k in ipairs(self.keys) do
    local x = r[k]
    parts[i] = tostring(x == nil and "*" or x)
    fields[k] = x
  end
  local key = table.concat(parts, " ")
  self.seen[key] = true
  self.threshold:update(key, v, fields)
end

function M:done()
  rules.sweep(self.threshold, self.seen, self.opts.below and math.huge or 0)
  self.seen = {}
end

return M
