@testable import Enforcer

/// A small catalog in the shipped format, so config and compiler tests do not depend on the
/// built-in catalogs' exact rows (those are pinned separately in CatalogTests).
enum Fixtures {
    static let miniCatalogText = """
    [catalog]
    name = "mini"
    version_default = "4.10"

    [roles]
    WEB = "web front end"
    APP = "application server"
    DB = "database"

    [groups]
    browsers = "user browsers"
    workers = "worker range"

    [features]
    metrics = "optional metrics port"

    [[rule]]
    role = "WEB"
    direction = "ingress"
    ports = [80, 443]
    remote = ["browsers"]
    note = "user access"

    [[rule]]
    role = "WEB"
    direction = "egress"
    ports = [8443]
    remote = ["APP"]
    note = "web to app"

    [[rule]]
    role = "APP"
    direction = "ingress"
    ports = [8443]
    remote = ["WEB"]
    note = "app API"

    [[rule]]
    role = "DB"
    direction = "ingress"
    ports = [5432]
    remote = ["APP"]
    note = "database (one-sided: APP has no egress row)"

    [[rule]]
    role = "APP"
    direction = "ingress"
    ports = [9100]
    remote = ["workers"]
    feature = "metrics"
    note = "metrics"

    [[rule]]
    role = "APP"
    direction = "egress"
    ports = [2375]
    remote = ["DB"]
    versions = "<4.6.2"
    note = "old docker"

    [[rule]]
    role = "APP"
    direction = "egress"
    ports = [2376]
    remote = ["DB"]
    versions = ">=4.6.2"
    note = "new docker"

    [[rule]]
    role = "DB"
    direction = "ingress"
    ports = [5405]
    proto = "udp"
    remote = ["DB"]
    note = "cluster heartbeat"

    [[rule]]
    role = "DB"
    direction = "egress"
    ports = [5405]
    proto = "udp"
    remote = ["DB"]
    note = "cluster heartbeat"

    [[rule]]
    role = "APP"
    direction = "egress"
    ports = "all"
    proto = "any"
    remote = ["any"]
    note = "anywhere"
    """

    static let miniCatalog: Catalog = try! Catalog.parse(text: miniCatalogText, file: "mini.toml")

    static let miniConfigText = """
    [host]
    roles = ["APP"]
    catalog = "mini"

    [groups]
    WEB = ["198.18.0.10", "fd00::10"]
    APP = ["198.18.0.20"]
    DB = ["198.18.0.30", "198.18.0.31"]
    browsers = ["198.19.0.0/24"]
    workers = ["198.18.128.0/17"]
    admin_ssh = ["198.19.9.0/24"]
    """

    static func config(_ text: String = miniConfigText) throws -> Config {
        try Config.parse(text: text, file: "test.conf", catalogOverride: miniCatalog)
    }
}
