-- Case 3: the debug library is out of reach, so debug.sethook cannot lift
-- the instruction budget (run with --budget 1000000).
local H = require "hlib"
local gw = H.gw

local attacks = {
  { "debug.sethook", "global 'debug'", function() debug.sethook() end },
  { "_G.debug", "field 'debug'", function() _G.debug.sethook() end },
  { "rawget debug", "a nil value", function() rawget(_G, "debug").sethook() end },
  { "package.loaded.debug", "field 'debug'", function() package.loaded.debug.sethook() end },
  { "require debug", "module 'debug' not found", function() require("debug").sethook() end },
  { "debug in a loaded chunk", "global 'debug'", function() load("debug.sethook()")() end },
  { "debug in a coroutine", "global 'debug'", function()
      coroutine.wrap(function() debug.sethook(coroutine.running()) end)() end },
}
H.top(attacks)

local loop = { "the budget still holds", "instruction budget exceeded", function()
  pcall(function() debug.sethook() end)
  local i = 0
  while true do i = i + 1 end
end }
local all = {}
for _, a in ipairs(attacks) do all[#all + 1] = a end
all[#all + 1] = loop
H.attacks(all, { done = function() H.result("KILLS", gw.stats().script.budget_kills) end })
