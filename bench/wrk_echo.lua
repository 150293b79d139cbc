-- wrk_echo.lua - scenario (e): POST /echo with a body of the size given as
-- the first script argument (default 65536 bytes), keep-alive.
local req
function init(args)
  local size = tonumber(args[1]) or 65536
  req = wrk.format("POST", "/echo",
                   {["Content-Type"] = "application/octet-stream"},
                   string.rep("a", size))
end
function request()
  return req
end
