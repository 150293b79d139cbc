-- wrk_pipeline.lua - scenario (b): GET /plaintext pipelined; the depth is
-- the first script argument (wrk ... -- 16). Each connection sends a whole
-- batch, then waits for all of its answers before sending the next.
local batch
function init(args)
  local depth = tonumber(args[1]) or 16
  local r = {}
  for i = 1, depth do
    r[i] = wrk.format("GET", "/plaintext")
  end
  batch = table.concat(r)
end
function request()
  return batch
end
