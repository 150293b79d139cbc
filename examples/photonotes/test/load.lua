-- SPDX-License-Identifier: MIT
-- test/load.lua - wrk script for test/load.sh: one user's traffic mix.
-- 80 % reads (60 % GET /v1/notes/:id, 20 % the first page of the list),
-- 15 % writes (10 % PUT with If-Match: *, 5 % POST), 5 % photo downloads
-- (PN_PHOTO: its URL, a 256 KiB JPEG). PN_TOKEN and PN_NOTES (ids
-- 1..PN_NOTES exist) come from the environment.
local token = os.getenv("PN_TOKEN")
local nnotes = tonumber(os.getenv("PN_NOTES") or "100")
local auth = "Bearer " .. token
local photo = os.getenv("PN_PHOTO")

function setup(thread)
    math.randomseed(os.time() + tonumber(tostring(thread):match("0x(%x+)"), 16) % 1000)
end

request = function()
    local r = math.random(100)
    local h = {["Authorization"] = auth}
    if r <= 60 then
        return wrk.format("GET", "/v1/notes/" .. math.random(nnotes), h)
    elseif r <= 80 then
        return wrk.format("GET", "/v1/notes?limit=20", h)
    elseif r <= 90 then
        h["Content-Type"] = "application/json"
        h["If-Match"] = "*"
        return wrk.format("PUT", "/v1/notes/" .. math.random(nnotes), h,
                          '{"title":"edited","body":"changed by the load run"}')
    elseif r <= 95 then
        h["Content-Type"] = "application/json"
        return wrk.format("POST", "/v1/notes", h, '{"title":"new","body":"made by the load run"}')
    else
        return wrk.format("GET", photo, h)
    end
end

done = function(summary, latency, requests)
    local s = summary.duration / 1e6
    io.write(string.format("load: %d requests in %.1f s: %.0f req/s, p50 %.2f ms, p99 %.2f ms, " ..
                           "errors: %d non-2xx/3xx, %d socket\n",
                           summary.requests, s, summary.requests / s,
                           latency:percentile(50) / 1000, latency:percentile(99) / 1000,
                           summary.errors.status,
                           summary.errors.connect + summary.errors.read +
                           summary.errors.write + summary.errors.timeout))
end
