"""The harness that tests and benchmarks share, run from the repository root (not installed).

    stack     a database and Redis key prefix of one's own: created, migrated, emptied, dropped
    nodes     helpline in-process (create_app on a loopback port) and as `helpline serve` processes
    accounts  accounts one by one (as a user would) or in bulk (SQL), tokens, a node's own clients
    client    WebSocket clients of the contract: one for assertions, one for load; plain HTTP
    geo       the test city's centre, a point near it, points spread around it
    twilio    a stand-in for Twilio's Messages API, signed inbound webhooks
    private   PostgreSQL and Redis servers of one test's own, to stop and restart
    stats     percentiles, CPU of processes and of PostgreSQL backends, report lines
    runtime   the harness's own process: log lines, file limit, uvloop, GC; `until` (a poll)
    crowd     client worker processes holding many residents each (benchmarks)
    crew      responders that work their offers (benchmarks)
    pyspy     py-spy of a node, and a summary of what it recorded (benchmarks)
"""
