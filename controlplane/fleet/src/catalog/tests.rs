use super::*;

#[test]
fn twenty_eight_services_one_fleet_singleton() {
    let catalog = Catalog::builtin();
    assert_eq!(catalog.all().len(), 28);
    let singletons: Vec<&str> = catalog
        .all()
        .into_iter()
        .filter(|s| s.fleet_singleton())
        .map(ServicePlugin::slug)
        .collect();
    assert_eq!(singletons, ["sniffer"]);
    assert_eq!(catalog.per_decky_slugs().len(), 27);
    assert_eq!(Catalog::random_pool().len(), 27);
}

#[test]
fn original_slugs_are_all_registered() {
    let original = [
        "ssh",
        "telnet",
        "http",
        "https",
        "ftp",
        "tftp",
        "smb",
        "rdp",
        "vnc",
        "smtp",
        "smtp_relay",
        "imap",
        "pop3",
        "ldap",
        "llmnr",
        "mysql",
        "postgres",
        "mssql",
        "mongodb",
        "redis",
        "elasticsearch",
        "k8s",
        "docker_api",
        "sip",
        "snmp",
        "mqtt",
        "conpot",
        "sniffer",
    ];
    let catalog = Catalog::builtin();
    for slug in original {
        assert!(catalog.get(slug).is_some(), "{slug} missing");
    }
}

#[test]
fn every_service_declares_ports_and_documented_keys() {
    for def in Catalog::builtin_defs() {
        assert_eq!(def.fleet_singleton, def.ports.is_empty(), "{}", def.slug);
        assert!(!def.summary.is_empty());
        let mut envs = std::collections::BTreeSet::new();
        for key in def.persona {
            assert!(!key.doc.is_empty(), "{}.{} undocumented", def.slug, key.key);
            assert!(
                envs.insert(key.env),
                "{}: env {} used twice",
                def.slug,
                key.env
            );
            assert!(!key.env.to_ascii_lowercase().contains("decnet"));
            if let Some(default) = key.default {
                assert_eq!(
                    key.kind.check(default),
                    Ok(()),
                    "{}.{} default",
                    def.slug,
                    key.key
                );
            }
        }
        let mut ports = def.ports.to_vec();
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), def.ports.len(), "{} repeats a port", def.slug);
    }
}

#[test]
fn known_ports() {
    let c = Catalog::builtin();
    let ports = |s: &str| {
        c.get(s)
            .unwrap()
            .ports()
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(ports("ssh"), ["22/tcp"]);
    assert_eq!(ports("tftp"), ["69/udp"]);
    assert_eq!(ports("sip"), ["5060/udp", "5060/tcp"]);
    assert_eq!(ports("smb"), ["445/tcp", "139/tcp"]);
}

#[test]
fn custom_services_register_and_clash() {
    let mut c = Catalog::builtin();
    let svc = CustomService {
        slug: "metrics".into(),
        image: "prom/node-exporter:latest".into(),
        exec: vec![],
        ports: vec![Port::tcp(9100)],
        caps: None,
        read_only: true,
    };
    c.register_custom(svc.clone()).unwrap();
    assert!(c.resolve("metrics").is_ok());
    assert_eq!(
        c.register_custom(svc.clone()),
        Err(CatalogError::DuplicateCustom("metrics".into()))
    );
    let clash = CustomService {
        slug: "ssh".into(),
        ..svc
    };
    assert_eq!(
        c.register_custom(clash),
        Err(CatalogError::ClashesWithBuiltin("ssh".into()))
    );
    assert!(matches!(
        c.resolve("sniffer"),
        Err(CatalogError::FleetSingleton(_))
    ));
    assert!(matches!(
        c.resolve("nope"),
        Err(CatalogError::UnknownService { .. })
    ));
    assert!(!Catalog::random_pool().contains(&"metrics"));
}

#[test]
fn value_kinds_check() {
    assert!(ValueKind::Int { min: 1, max: 5 }.check("6").is_err());
    assert!(ValueKind::Int { min: 1, max: 5 }.check("5").is_ok());
    assert!(ValueKind::Bool.check("yes").is_ok());
    assert!(ValueKind::Bool.check("maybe").is_err());
    assert!(ValueKind::Json.check("{\"a\":1}").is_ok());
    assert!(ValueKind::Json.check("3").is_err());
    assert!(
        ValueKind::Credentials
            .check("root:toor, admin:admin")
            .is_ok()
    );
    assert!(ValueKind::Credentials.check("root").is_err());
    assert!(
        ValueKind::HostDir { mount: "/x" }
            .check("relative/dir")
            .is_err()
    );
    assert!(ValueKind::OneOf(&["a", "b"]).check("c").is_err());
}
