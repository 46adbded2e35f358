-- wrk script: counts responses per status code over every thread and
-- prints them when the run ends, one "status CODE COUNT" line each, then
-- wrk's socket error counters as "errors connect|read|write|timeout N".
-- Used by t/085-faults-load.t.

local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    counts = {}
end

function response(status, headers, body)
    counts[status] = (counts[status] or 0) + 1
end

function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        for code, n in pairs(t:get("counts")) do
            total[code] = (total[code] or 0) + n
        end
    end
    for code, n in pairs(total) do
        io.write(string.format("status %d %d\n", code, n))
    end
    for _, k in ipairs({"connect", "read", "write", "timeout"}) do
        io.write(string.format("errors %s %d\n", k, summary.errors[k]))
    end
end
