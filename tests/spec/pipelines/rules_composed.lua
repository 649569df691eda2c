-- Several rules of the library sharing one sockets source with the script's
-- own handlers, as a user composes them (tests/spec/rules_compose_spec.lua).
local gw = require "nlgate"
local rules = require "nlgate.rules"

local feed = gw.unix { path = "rules-composed.sock" }
local socks = gw.sockets { every = "2s" }
local polls = 0

rules.attach(socks, {
  require("nlgate.rules.slow_rtt").new { above = 100000, clear = 50000 },
  require("nlgate.rules.accept_queue").new {},
  require("nlgate.rules.half_open").new { above = 3 },
}, {
  each = function(s) feed:send("sock", s) end,
  batch = function(b)
    polls = polls + 1
    feed:send("poll", { n = polls, records = #b })
  end,
})
