-- my_rule.lua: alert when one user holds too many established TCP connections.
local gw = require "nlgate"

gw.unix { path = os.getenv("FEED") or "my_rule.sock" } -- alerts go to every output
local socks = gw.sockets { every = "5s", proto = "tcp", states = "established" }

local limit = tonumber(os.getenv("LIMIT") or "100")
local per_uid = gw.counter { by = "uid" } -- the key is read from each record, in C
local too_many = gw.threshold { name = "too_many_conns", above = limit, clear = limit * 0.8,
                                message = "too many established connections" }

socks:each(function(s) per_uid:add(s) end)

socks:batch(function()
  for uid, n in per_uid:pairs() do
    too_many:update(uid, n, { uid = uid, connections = n })
  end
  for _, uid in ipairs(too_many:firing()) do -- a user with no connection left resolves
    if per_uid:get(uid) == 0 then too_many:update(uid, 0) end
  end
  per_uid:reset()
end)
