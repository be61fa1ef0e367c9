"""database.url: one host or several (a primary and its standbys), checked before anything connects."""
from __future__ import annotations

import pytest

from infra import config as config_mod
from infra import dburl
from infra.dburl import DbUrlError, Host


def test_several_hosts_with_ports_and_the_database():
    u = dburl.parse("postgresql://helpline@db1:5432,db2:5433/helpline?target_session_attrs=read-write")
    assert u.hosts == (Host("db1", 5432), Host("db2", 5433))
    assert (u.database, u.user, u.target_session_attrs) == ("helpline", "helpline", "read-write")
    assert u.hosts_text() == "db1:5432, db2:5433"


def test_defaults_port_ipv6_and_password():
    u = dburl.parse("postgres://app:s%40cret@10.0.0.1,[::1]:6000/hl")
    assert u.hosts == (Host("10.0.0.1", 5432), Host("::1", 6000))
    assert u.hosts_text() == "10.0.0.1:5432, [::1]:6000"
    assert u.target_session_attrs is None


def test_the_embedded_unix_socket_form_and_host_parameters():
    u = dburl.parse("postgresql://postgres:@/helpline?host=/tmp/var/pg")
    assert u.hosts == (Host("/tmp/var/pg", 5432),) and u.database == "helpline"
    u = dburl.parse("postgresql://postgres@/hl?host=a,b&port=5501,5502")
    assert u.hosts == (Host("a", 5501), Host("b", 5502))
    # a setting the server takes (sent as a server setting) is fine
    assert dburl.parse("postgresql://u@h/db?application_name=node-a").params == {"application_name": "node-a"}


@pytest.mark.parametrize("url, words", [
    ("postgresql://u@h1:54x2/db", "the port '54x2' of the host (h1)"),
    ("postgresql://u@h1:5432,h2:99999/db", "the port '99999' of host 2 of 2 (h2)"),
    ("postgresql://u@h1:5432,,h2/db", "host 2 of 3 is empty"),
    ("postgresql://u@h1:5432,/db", "host 2 of 2 is empty"),
    ("mysql://u@h1/db", "the scheme 'mysql'"),
    ("redis://h1:6379", "the scheme 'redis'"),
    ("db1:5432", "must look like postgresql://"),
    ("postgresql://u@h1/db?target_session_attrs=readwrite", "target_session_attrs='readwrite' is not one of"),
    ("postgresql://u@h1/db?target_session_attr=read-write", "unknown parameter 'target_session_attr'"
                                                            " (did you mean target_session_attrs?)"),
    ("postgresql://u@h1/db?connect_timeout=5", "'connect_timeout' is not supported"),
    ("postgresql://u@h1/db?sslmode=maybe", "sslmode='maybe'"),
    ("postgresql://u@h 1/db", "'h 1' is not a host name"),
    ("postgresql://u@h1/db/x", "the database name 'db/x'"),
    ("postgresql://u@h1/db?a", "the query 'a' is not key=value"),
    ("postgresql://u@h1/db?Bad-Key=1", "unknown parameter 'Bad-Key'"),
    ("postgresql://u@h1/db?target_session_attrs=read-write&target_session_attrs=any", "given twice"),
    ("postgresql://u@[zz/db", "is not an IPv6 address"),
    ("postgresql://u@h1,h2/db?port=1,2,3", "2 hosts but 3 ports"),
    ("", "database.url is empty"),
])
def test_malformed_urls_name_the_wrong_part(url, words):
    with pytest.raises(DbUrlError) as e:
        dburl.parse(url)
    assert words in str(e.value)
    assert str(e.value).startswith("database.url")


def test_a_node_connects_read_write_unless_told_primary():
    assert dburl.for_node("postgresql://u@h1,h2/db")[1] == "read-write"
    assert dburl.for_node("postgresql://u@h1,h2/db?target_session_attrs=read-write")[1] == "read-write"
    assert dburl.for_node("postgresql://u@h1,h2/db?target_session_attrs=primary")[1] == "primary"


@pytest.mark.parametrize("attrs", ["any", "read-only", "standby", "prefer-standby"])
def test_a_node_refuses_attrs_that_allow_a_read_only_host(attrs):
    with pytest.raises(DbUrlError) as e:
        dburl.for_node(f"postgresql://u@h1,h2/db?target_session_attrs={attrs}")
    assert f"target_session_attrs={attrs}" in str(e.value) and "read-write" in str(e.value)


def test_config_validation_refuses_a_bad_url_naming_it():
    env = {"HELPLINE_DATABASE_URL": "postgresql://u@h1:5432,h2:x/db"}
    with pytest.raises(config_mod.ConfigError) as e:
        config_mod.load(env)
    assert "database.url: the port 'x' of host 2 of 2 (h2)" in str(e.value)
    env = {"HELPLINE_DATABASE_URL": "postgresql://u@h1,h2/db?target_session_attrs=standby"}
    with pytest.raises(config_mod.ConfigError):
        config_mod.load(env)
    ok = config_mod.load({"HELPLINE_DATABASE_URL": "postgresql://u@h1:5501,h2:5502/db"})
    assert ok.database.url.endswith("5502/db")
