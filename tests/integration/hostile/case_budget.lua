-- Case 4: the instruction budget (run with --budget 1000000) cannot be
-- swallowed: a kill is sticky through pcall, coroutines, xpcall's message
-- handler, __close, __tostring, callbacks from C; each handler is stopped,
-- counted in gw.stats().script.budget_kills, and the gateway goes on.
local H = require "hlib"
local gw = H.gw
local KILLED = "instruction budget exceeded || handler stopped"

local function spin() while true do end end

local attacks = {
  { "plain loop", KILLED, spin },
  { "pcall in a loop", KILLED, function() while true do pcall(spin) end end },
  { "nested pcall", KILLED, function()
      while true do pcall(function() while true do pcall(spin) end end) end end },
  { "coroutine.resume in a loop", KILLED, function()
      while true do coroutine.resume(coroutine.create(spin)) end end },
  { "coroutine.wrap in a loop", KILLED, function()
      while true do pcall(coroutine.wrap(spin)) end end },
  { "a coroutine catching in a loop", KILLED, function()
      local co = coroutine.wrap(function() while true do pcall(spin) coroutine.yield() end end)
      while true do pcall(co) end end },
  { "xpcall in a loop", KILLED, function()
      while true do xpcall(spin, function(m) return m end) end end },
  { "__close that loops", KILLED, function()
      while true do
        pcall(function()
          local guard <close> = setmetatable({}, { __close = spin })
          spin()
        end)
      end end },
  { "__tostring of the error object", KILLED, function()
      while true do pcall(error, setmetatable({}, { __tostring = spin })) spin() end end },
  { "a loaded chunk", KILLED, function() while true do pcall(load("while true do end")) end end },
  { "string.gsub callback", KILLED, function()
      while true do pcall(string.gsub, string.rep("a", 100), ".", spin) end end },
  { "table.sort comparator", KILLED, function()
      while true do pcall(table.sort, { 3, 2, 1, 5, 4 }, spin) end end },
  { "__index chain", KILLED, function()
      local t = setmetatable({}, { __index = function() spin() end })
      while true do pcall(function() return t.x end) end end },
}

H.attacks(attacks, {
  every = "60ms",
  done = function()
    local st = gw.stats().script
    H.result("KILLS", st.budget_kills, #attacks)
    -- under `nlgate run` handlers start unhooked: the watchdog armed the
    -- budget's hook for the loops on the main thread
    H.result("ARMED", st.budget_armed > 0)
    -- the next handler call runs normally again
    local n = 0
    for i = 1, 100000 do n = n + i end
    H.result("AFTER", n)
  end,
})
