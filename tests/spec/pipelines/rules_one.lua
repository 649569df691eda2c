-- One rule of the library on one source, for tests/spec/rules_*_spec.lua:
-- RULE names the module (scripts/nlgate/rules/RULE.lua, default slow_rtt), OPTS its options as
-- a Lua table constructor (it may name `feed`, the pipeline's output), SOURCE
-- the source: sockets (default), conntrack or flows (packets with flows on).
local gw = require "nlgate"
local rules = require "nlgate.rules"

local feed = gw.unix { path = "rules-spec.sock" }
local source = os.getenv("SOURCE") or "sockets"
local src
if source == "sockets" then
  src = gw.sockets { every = "2s" }
elseif source == "conntrack" then
  src = gw.conntrack { events = "new,destroy" }
elseif source == "flows" then
  src = gw.packets { iface = "lo", flows = true }
else
  error("rules_one: bad SOURCE " .. source)
end

local opts = assert(load("return " .. (os.getenv("OPTS") or "{}"), "=OPTS", "t",
                         { feed = feed, gw = gw }))()
local rule = require("nlgate.rules." .. (os.getenv("RULE") or "slow_rtt")).new(opts)
rules.attach(src, { rule })
