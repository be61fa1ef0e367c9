"""Every Redis key and pub/sub channel name, in one place.

All start with the configured `redis.key_prefix`, so deployments and test runs
can share one Redis.

On a Redis Cluster (`redis+cluster://`) the prefix is made a hash tag (`helpline:` becomes
`{helpline}:`, `cluster_prefix`), so that every key and channel of one deployment hashes to the same
slot: the matching script, the rate limits' MULTI, the pipelined publishes and counters all touch
several keys at once, and a cluster runs those only within one slot. The cluster then gives
failover, not sharding of helpline's keys (docs/operations.md "Redis Cluster").
"""
from __future__ import annotations

from infra import redisurl


def has_hash_tag(key: str) -> bool:
    """`key` hashes by a tag of its own: a '{' with a non-empty '...}' after it (Redis Cluster's rule)."""
    start = key.find("{")
    return start >= 0 and key.find("}", start + 1) > start + 1


def cluster_prefix(prefix: str) -> str:
    """The prefix as a hash tag: `helpline:` -> `{helpline}:`; one that has a tag already is kept."""
    if has_hash_tag(prefix):
        return prefix
    core = prefix.rstrip(":") or prefix
    return "{" + core + "}" + prefix[len(core):]


class Keys:
    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    @classmethod
    def for_redis(cls, prefix: str, url: str | None) -> Keys:
        """The keys for `redis.key_prefix` on `redis.url`: hash-tagged on a Redis Cluster."""
        if url and isinstance(redisurl.parse(url), redisurl.ClusterTarget):
            return cls(cluster_prefix(prefix))
        return cls(prefix)

    @property
    def keepalive_channel(self) -> str:
        """Subscribed by every node's bus so that its connection stays in subscribe mode (never published)."""
        return f"{self.prefix}ch:keepalive"

    # pub/sub channels: scoped, so a node only hears what its own clients need
    def account_channel(self, account_id: str) -> str:
        return f"{self.prefix}ch:acct:{account_id}"

    @property
    def dispatch_channel(self) -> str:
        """Every incident and responder change, for dispatchers watching the queue."""
        return f"{self.prefix}ch:dispatch"

    @property
    def cases_channel(self) -> str:
        """Every case change, for mediators watching the case list."""
        return f"{self.prefix}ch:cases"

    def room_channel(self, case_id: str, room: str) -> str:
        return f"{self.prefix}ch:room:{case_id}:{room}"

    def case_channel(self, case_id: str) -> str:
        return f"{self.prefix}ch:case:{case_id}"

    @property
    def push_subscribed_channel(self) -> str:
        """Doorbell rung by the node that kept a push subscription (payload: account id and role), so that
        every node's note of which accounts hold one is current (push/service.py; PostgreSQL is the truth)."""
        return f"{self.prefix}ch:push:subscribed"

    # live indexes
    def geo(self, skill: str) -> str:
        """GEO set of on-duty responders holding `skill` (member: account id)."""
        return f"{self.prefix}geo:{skill}"

    def online(self, account_id: str) -> str:
        """Set while the account has a live connection on some node (expires if that node dies)."""
        return f"{self.prefix}online:{account_id}"

    @property
    def pageable(self) -> str:
        """Set of responders on duty with a phone: candidates while off line, reached by SMS and voice (issue 12)."""
        return f"{self.prefix}pageable"

    def sessions(self, account_id: str) -> str:
        """Hash of the account's open WebSocket sessions across the cluster (staff only; infra/sessions.py):
        field node:serial, value JSON of node, since, address, user agent, token id; refreshed by each node."""
        return f"{self.prefix}sessions:{account_id}"

    def rate(self, scope: str, ident: str) -> str:
        return f"{self.prefix}rate:{scope}:{ident}"

    def push_once(self, what: str) -> str:
        """Set NX by the node that sends a dispatchers' push (`what`: an escalation event, a new P1
        incident), so that it goes out once across the cluster however often the state is published."""
        return f"{self.prefix}push:once:{what}"

    @property
    def live_ready(self) -> str:
        """Set once the live index (GEO sets) has been rebuilt from PostgreSQL: absent after a Redis restart
        or flush, and then reports wait queued instead of escalating for want of responders."""
        return f"{self.prefix}live:ready"

    @property
    def live_fresh(self) -> str:
        """Set, with a short expiry, by each rebuild: presence may still be coming back from the nodes."""
        return f"{self.prefix}live:fresh"
