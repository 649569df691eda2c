-- Case 2: no way to run bytecode (string.dump is gone; load and require take
-- text only, whatever mode is asked for); text load works and sees the
-- script's globals.
local H = require "hlib"
local gw = H.gw

-- The header of a Lua 5.4 binary chunk (what string.dump would make)
local binary = "\27LuaT\0\25\147\r\n\26\n\4\8\8xV\0\0\0\0\0\0\0\0\0\0\0(w@\1\0\0\0"

local function must(f, e)
  if not f then error(e) end -- error() adds this file:line
  return f
end

local attacks = {
  { "load(string.dump(f))", "field 'dump'", function() load(string.dump(function() return 1 end)) end },
  { "dump through the string metatable", "a nil value", function()
      local dump = getmetatable("").__index.dump
      load(dump(print)) end },
  { "load a binary chunk", "attempt to load a binary chunk", function() must(load(binary)) end },
  { "load a binary chunk, mode b", "attempt to load a binary chunk", function() must(load(binary, "=x", "b")) end },
  { "load a binary chunk, mode bt with env", "attempt to load a binary chunk", function()
      must(load(binary, "=x", "bt", _ENV)) end },
  { "load a binary chunk from a reader", "attempt to load a binary chunk", function()
      local parts, i = { binary:sub(1, 1), binary:sub(2, 4), binary:sub(5) }, 0
      must(load(function() i = i + 1 return parts[i] end, "=x", "b")) end },
  { "require a binary module", "attempt to load a binary chunk", function()
      local ok, e = pcall(require, "bytecode_mod")
      if not ok then error(e) end end },
  { "load sees no debug", "global 'debug'", function() must(load("return debug.sethook"))() end },
  { "loaded text sees no io.open", "field 'open'", function() must(load("io.open('x', 'w')"))() end },
}

H.top(attacks)

MARK = "global-seen"
local function text_load()
  assert(load("return MARK")() == "global-seen", "load does not see the script's globals")
  assert(load("MARK2 = 1 + 1")) ()
  assert(MARK2 == 2, "a loaded chunk's global is not the script's")
  assert(load("return x * 2", "=c", "t", { x = 21 })() == 42, "load with an env")
  local parts, i = { "return ", "'pie", "ces'" }, 0
  assert(load(function() i = i + 1 return parts[i] end)() == "pieces", "load from a reader")
  local f, e = load("return +", "=broken")
  assert(not f and e:find("broken:1:"), "a syntax error in load")
  return true
end
H.result("LOAD top", text_load())

H.attacks(attacks, { done = function() H.result("LOAD timer", text_load()) end })
