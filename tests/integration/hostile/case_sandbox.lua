-- Case 1: nothing that writes, removes, executes or loads native code is
-- reachable, at the top level or in a handler; the harmless parts of the
-- standard library still work.
local H = require "hlib"
local gw, D = H.gw, H.dir
local canary = D .. "/canary.txt"
local lfs_so = os.getenv("NLGT_CMOD") -- a real C module on this host, or nil

local attacks = {
  { "io.open", "field 'open'", function() io.open(D .. "/new-open", "w"):write("x") end },
  { "io.open relative", "field 'open'", function() io.open("new-rel", "w"):write("x") end },
  { "io.lines", "field 'lines'", function() for _ in io.lines(canary) do end end },
  { "io.popen", "field 'popen'", function() io.popen("touch " .. D .. "/new-popen") end },
  { "io.output", "field 'output'", function() io.output(D .. "/new-output") end },
  { "io.input", "field 'input'", function() io.input(canary) end },
  { "io.read", "field 'read'", function() io.read("a") end },
  { "io.tmpfile", "field 'tmpfile'", function() io.tmpfile() end },
  { "io.stdout:close", "method 'close'", function() io.stdout:close() end },
  { "io.stderr:setvbuf", "method 'setvbuf'", function() io.stderr:setvbuf("no") end },
  { "metatable of io.stdout", "attempt to index a boolean value", function()
      getmetatable(io.stdout).__index.close(io.stdout) end },
  { "os.remove", "field 'remove'", function() os.remove(canary) end },
  { "os.rename", "field 'rename'", function() os.rename(canary, D .. "/moved") end },
  { "os.tmpname", "field 'tmpname'", function() os.tmpname() end },
  { "os.exit", "field 'exit'", function() os.exit(3) end },
  { "os.execute", "field 'execute'", function() os.execute("touch " .. D .. "/new-exec") end },
  { "os.setlocale", "field 'setlocale'", function() os.setlocale("C") end },
  { "dofile", "global 'dofile'", function() dofile(canary) end },
  { "loadfile", "global 'loadfile'", function() loadfile(canary) end },
  { "package.loadlib", "field 'loadlib'", function()
      package.loadlib(lfs_so or "/nonexistent.so", "luaopen_lfs")() end },
  { "require C module", "module 'lfs' not found", function() require "lfs" end },
  { "require C module via cpath", "module 'lfs' not found", function()
      package.cpath = (lfs_so or "/nonexistent.so"):gsub("lfs%.so$", "?.so")
      package.path = package.cpath
      require "lfs" end },
  { "require io's real library", "field 'open'", function() require("io").open(D .. "/new-req", "w") end },
  { "string.dump", "field 'dump'", function() string.dump(print) end },
}

H.top(attacks)

-- What must still work: terminal output, the time, the environment and the
-- pure libraries. Logs "WORKS ..." or raises.
local function works()
  io.write("IOWRITE-OK\n")
  io.stdout:write("STDOUT-OK\n"):flush()
  io.stderr:write("STDERR-OK\n")
  io.flush()
  print("PRINT-OK")
  assert(type(os.time()) == "number" and type(os.clock()) == "number")
  assert(os.date("!%Y", 0) == "1970" and os.difftime(2, 1) == 1)
  assert(os.getenv("NLGT_DIR") == D)
  assert(string.format("%05.1f|%s", 3.14159, ("abc"):upper()) == "003.1|ABC")
  assert(("a,b,c"):gsub(",", ";") == "a;b;c")
  local t = { 3, 1, 2 }
  table.sort(t)
  assert(table.concat(t, "") == "123" and table.unpack(t, 2, 2) == 2)
  assert(math.floor(math.pi * 100) == 314 and math.maxinteger > 0 and math.type(1) == "integer")
  assert(utf8.char(233, 8364) == "é€" and utf8.len("é€") == 2)
  local co = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) return b * 2 end)
  assert(co(1) == 2 and co(5) == 10)
  assert(select("#", pcall(error, "x")) == 2 and tostring(nil) == "nil" and tonumber("0x10") == 16)
  assert(next({}) == nil and rawlen({ 1, 2 }) == 2 and #setmetatable({}, {}) == 0)
  assert(collectgarbage("count") > 0)
  assert(require("nlgate") == gw and require("nlgate.rules") and type(package.loaded) == "table")
  return true
end
H.result("WORKS top", works())

H.attacks(attacks, {
  done = function()
    H.result("WORKS timer", works())
    H.result("ERRORS", gw.stats().script.errors)
  end,
})
