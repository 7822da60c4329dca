use std::net::Ipv4Addr;

use proptest::prelude::*;

use super::*;
use crate::{config, spec::NetworkSpec};

fn spec_of(count: usize, subnet: &str) -> FleetSpec {
    FleetSpec {
        network: NetworkSpec {
            subnet: Some(subnet.parse().unwrap()),
            ..NetworkSpec::default()
        },
        deckies: (1..=count)
            .map(|n| DeckySpec {
                name: format!("h{n}"),
                services: Some(vec!["ssh".into()]),
                ..DeckySpec::default()
            })
            .collect(),
        ..FleetSpec::default()
    }
}

fn seeded(seed: u64) -> PlanOptions {
    PlanOptions {
        seed: Some(seed),
        ..PlanOptions::default()
    }
}

#[test]
fn allocation_skips_network_gateway_and_host() {
    let mut spec = spec_of(3, "10.0.0.0/29");
    spec.network.host_ips = vec![Ipv4Addr::new(10, 0, 0, 3)];
    let plan = plan(spec, &seeded(1)).unwrap();
    let ips: Vec<String> = plan.deckies.iter().map(|d| d.ip.to_string()).collect();
    assert_eq!(ips, ["10.0.0.2", "10.0.0.4", "10.0.0.5"]);
    assert_eq!(plan.network.gateway, Ipv4Addr::new(10, 0, 0, 1));
    assert_eq!(plan.network.ip_range.to_string(), "10.0.0.0/29");
}

#[test]
fn subnet_too_small_is_a_clear_error() {
    let err = plan(spec_of(6, "10.0.0.0/29"), &seeded(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[h6]: subnet 10.0.0.0/29 is too small: 6 addresses needed from 10.0.0.0, only 5 free; use a \
         larger subnet, an earlier --ip-start or fewer hosts"
    );
}

#[test]
fn ip_start_and_explicit_ips() {
    let mut spec = spec_of(3, "192.168.5.0/24");
    spec.network.ip_start = Some(Ipv4Addr::new(192, 168, 5, 100));
    spec.deckies[1].ip = Some((Ipv4Addr::new(192, 168, 5, 101), Some(9)));
    let plan = plan(spec, &seeded(1)).unwrap();
    let ips: Vec<String> = plan.deckies.iter().map(|d| d.ip.to_string()).collect();
    assert_eq!(ips, ["192.168.5.100", "192.168.5.101", "192.168.5.102"]);
    assert_eq!(plan.network.ip_range.to_string(), "192.168.5.100/30");
}

#[test]
fn explicit_ip_errors_name_the_line() {
    let mut spec = spec_of(2, "10.0.0.0/24");
    spec.deckies[0].ip = Some((Ipv4Addr::new(10, 0, 1, 5), Some(4)));
    let err = plan(spec, &seeded(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 4: [h1] ip: 10.0.1.5 is outside the subnet 10.0.0.0/24"
    );

    let mut spec = spec_of(2, "10.0.0.0/24");
    spec.deckies[0].ip = Some((Ipv4Addr::new(10, 0, 0, 1), Some(4)));
    let err = plan(spec, &seeded(1)).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::IpReserved {
                role: "the subnet's gateway",
                ..
            }
        ),
        "{err}"
    );

    let mut spec = spec_of(2, "10.0.0.0/24");
    spec.deckies[0].ip = Some((Ipv4Addr::new(10, 0, 0, 9), Some(4)));
    spec.deckies[1].ip = Some((Ipv4Addr::new(10, 0, 0, 9), Some(8)));
    let err = plan(spec, &seeded(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "line 8: [h2] ip: 10.0.0.9 is already assigned to `h1`"
    );
}

#[test]
fn same_seed_same_plan() {
    let mut a = spec_of(10, "10.1.0.0/24");
    for d in &mut a.deckies {
        d.services = None;
    }
    let b = a.clone();
    let opts = PlanOptions {
        randomize_services: true,
        ..seeded(99)
    };
    let pa = serde_json::to_string(&plan(a, &opts).unwrap()).unwrap();
    let pb = serde_json::to_string(&plan(b, &opts).unwrap()).unwrap();
    assert_eq!(pa, pb);
}

#[test]
fn random_services_are_distinct_combinations_without_port_clashes() {
    let mut spec = spec_of(40, "10.2.0.0/24");
    for d in &mut spec.deckies {
        d.services = None;
    }
    let opts = PlanOptions {
        randomize_services: true,
        ..seeded(5)
    };
    let plan = plan(spec, &opts).unwrap();
    let mut combos = std::collections::BTreeSet::new();
    for d in &plan.deckies {
        assert!((1..=3).contains(&d.services.len()), "{:?}", d.services);
        let mut sorted = d.services.clone();
        sorted.sort();
        assert!(
            combos.insert(sorted),
            "repeated combination {:?}",
            d.services
        );
        let mut ports = Vec::new();
        for s in &d.services {
            for p in plan.catalog.get(s).unwrap().ports() {
                assert!(!ports.contains(p), "{:?} clash on {p}", d.services);
                ports.push(*p);
            }
        }
    }
}

#[test]
fn no_service_source_is_an_error() {
    let mut spec = spec_of(1, "10.2.0.0/24");
    spec.deckies[0].services = None;
    let err = plan(spec, &seeded(1)).unwrap_err();
    assert_eq!(err.kind(), &ErrorKind::NoServiceSource);
}

#[test]
fn port_clash_is_rejected() {
    let mut spec = spec_of(1, "10.2.0.0/24");
    spec.deckies[0].services = Some(vec!["smtp".into(), "smtp_relay".into()]);
    let err = plan(spec, &seeded(1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "[h1] services: services `smtp` and `smtp_relay` both bind 25/tcp; a host can run only \
         one of them"
    );
}

#[test]
fn distro_order_explicit_random_archetype_round_robin() {
    let arche = crate::archetype::archetype("devops-host").unwrap();
    let mut spec = spec_of(4, "10.3.0.0/24");
    for d in &mut spec.deckies {
        d.services = None;
        d.archetype = Some(arche);
    }
    // archetype preference, cycled: ubuntu22, debian, ubuntu22, debian
    let p = plan(spec.clone(), &seeded(1)).unwrap();
    let got: Vec<&str> = p.deckies.iter().map(|d| d.distro).collect();
    assert_eq!(got, ["ubuntu22", "debian", "ubuntu22", "debian"]);
    // explicit list wins over archetype
    let opts = PlanOptions {
        distros: vec![
            crate::distro::distro("kali").unwrap(),
            crate::distro::distro("arch").unwrap(),
        ],
        ..seeded(1)
    };
    let p = plan(spec.clone(), &opts).unwrap();
    let got: Vec<&str> = p.deckies.iter().map(|d| d.distro).collect();
    assert_eq!(got, ["kali", "arch", "kali", "arch"]);
    // a host's own distro wins over everything
    spec.deckies[2].distro = crate::distro::distro("alpine");
    let p = plan(spec, &opts).unwrap();
    assert_eq!(p.deckies[2].distro, "alpine");
    // no archetype, no list: round-robin over all nine
    let p = plan(spec_of(10, "10.3.0.0/24"), &seeded(1)).unwrap();
    let got: Vec<&str> = p.deckies.iter().map(|d| d.distro).collect();
    assert_eq!(got[..9], crate::distro::distro_slugs()[..]);
    assert_eq!(got[9], "debian");
}

#[test]
fn os_macs_and_hostnames_follow_the_persona() {
    let win = crate::archetype::archetype("windows-workstation").unwrap();
    let mut spec = spec_of(20, "10.4.0.0/24");
    for d in &mut spec.deckies {
        d.services = None;
        d.archetype = Some(win);
    }
    let p = plan(spec, &seeded(3)).unwrap();
    let mut names = std::collections::BTreeSet::new();
    let mut macs = std::collections::BTreeSet::new();
    for d in &p.deckies {
        assert_eq!(d.os, OsFamily::Windows);
        assert!(d.hostname.starts_with("DESKTOP-"));
        let mac = d.mac.unwrap();
        assert!(!mac.is_locally_administered());
        assert!(
            crate::mac::ouis_for(OsFamily::Windows, Some("windows-workstation"))
                .iter()
                .any(|(o, _)| *o == mac.oui())
        );
        assert!(names.insert(d.hostname.clone()));
        assert!(macs.insert(mac));
    }
}

#[test]
fn ipvlan_plans_have_no_macs() {
    let mut spec = spec_of(2, "10.5.0.0/24");
    spec.network.ipvlan = true;
    let p = plan(spec, &seeded(1)).unwrap();
    assert!(p.deckies.iter().all(|d| d.mac.is_none()));
}

#[test]
fn mutate_interval_precedence() {
    let ini = b"[general]\nnet = 10.6.0.0/24\nmutate_interval = 45\n\n[aa]\nservices = ssh\nmutate_interval = 5\n\n[bb]\nservices = ssh\n";
    let spec = config::load(ini).unwrap();
    let p = plan(spec.clone(), &seeded(1)).unwrap();
    assert_eq!(
        (p.deckies[0].mutate_interval, p.deckies[1].mutate_interval),
        (5, 45)
    );
    let opts = PlanOptions {
        mutate_interval: Some(90),
        ..seeded(1)
    };
    let p = plan(spec, &opts).unwrap();
    assert_eq!(
        (p.deckies[0].mutate_interval, p.deckies[1].mutate_interval),
        (5, 90)
    );
    let p = plan(spec_of(1, "10.6.0.0/24"), &seeded(1)).unwrap();
    assert_eq!(p.deckies[0].mutate_interval, DEFAULT_MUTATE_MINUTES);
}

#[test]
fn duplicate_hostnames_are_refused() {
    let mut spec = spec_of(2, "10.7.0.0/24");
    spec.deckies[0].hostname = Some("web01".into());
    spec.deckies[1].hostname = Some("web01".into());
    let err = plan(spec, &seeded(1)).unwrap_err();
    assert!(
        err.to_string().contains("hostname `web01` is already used"),
        "{err}"
    );
}

#[test]
fn random_hosts_keep_the_services_their_personas_configure() {
    let ini = b"[general]\nnet = 10.8.0.0/24\n\n[web]\namount = 4\n\n[web.ssh]\npassword = x\n";
    for seed in 0..20 {
        let p = plan(config::load(ini).unwrap(), &seeded(seed)).unwrap();
        for d in &p.deckies {
            assert!(
                d.services.contains(&"ssh".to_owned()),
                "seed {seed}: {:?}",
                d.services
            );
            assert_eq!(d.persona["ssh"]["password"], "x");
        }
    }
}

#[test]
fn covering_net_is_tight() {
    let ips = ["10.0.0.5", "10.0.0.9"].map(|s| s.parse::<Ipv4Addr>().unwrap());
    assert_eq!(
        covering_net(ips.into_iter()).unwrap().to_string(),
        "10.0.0.0/28"
    );
    let one = ["10.0.0.5".parse::<Ipv4Addr>().unwrap()];
    assert_eq!(
        covering_net(one.into_iter()).unwrap().to_string(),
        "10.0.0.5/32"
    );
    assert!(covering_net(std::iter::empty()).is_none());
}

prop_compose! {
    fn arb_subnet()(addr in any::<u32>(), prefix in 20u8..=32) -> Ipv4Net {
        Ipv4Net::new(Ipv4Addr::from(addr), prefix).unwrap().trunc()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The planner never hands out one address twice, nor the network, broadcast, gateway or
    /// the appliance's own address, and never leaves the subnet; when it fails, it fails with
    /// a clear "too small" error only if the free addresses really do not suffice.
    #[test]
    fn allocation_is_unique_and_avoids_reserved(
        subnet in arb_subnet(),
        count in 1usize..80,
        start_offset in 0u32..64,
        host_offset in 0u32..64,
        explicit_offsets in proptest::collection::vec(0u32..64, 0..4),
        gateway_offset in proptest::option::of(1u32..64),
    ) {
        let size = 1u64 << (32 - subnet.prefix_len());
        let base = u32::from(subnet.network());
        let at = |off: u32| Ipv4Addr::from(base.wrapping_add(u32::try_from(u64::from(off) % size).unwrap()));
        let mut spec = spec_of(count, &subnet.to_string());
        spec.network.host_ips = vec![at(host_offset)];
        spec.network.ip_start = Some(at(start_offset));
        let mut explicit = Vec::new();
        for (i, off) in explicit_offsets.iter().enumerate() {
            if i < count {
                spec.deckies[i].ip = Some((at(*off), None));
                explicit.push(at(*off));
            }
        }
        if let Some(off) = gateway_offset {
            spec.network.gateway = Some(at(off));
        }
        let gateway = spec.network.gateway.unwrap_or_else(|| subnet.hosts().next().unwrap());
        match plan(spec, &seeded(0)) {
            Ok(p) => {
                let mut seen = std::collections::BTreeSet::new();
                for d in &p.deckies {
                    prop_assert!(subnet.contains(&d.ip));
                    prop_assert!(explicit.contains(&d.ip) || d.ip >= at(start_offset), "{} before ip_start", d.ip);
                    prop_assert!(seen.insert(d.ip), "{} handed out twice", d.ip);
                    prop_assert_ne!(d.ip, gateway);
                    prop_assert_ne!(d.ip, at(host_offset));
                    if subnet.prefix_len() < 31 {
                        prop_assert_ne!(d.ip, subnet.network());
                        prop_assert_ne!(d.ip, subnet.broadcast());
                    }
                }
            }
            Err(e) => {
                let ok = matches!(
                    e.kind(),
                    ErrorKind::SubnetTooSmall { .. }
                        | ErrorKind::IpReserved { .. }
                        | ErrorKind::DuplicateIp { .. }
                );
                prop_assert!(ok, "unexpected error {e}");
                if let ErrorKind::SubnetTooSmall { needed, .. } = e.kind() {
                    // Count the free addresses independently of the planner.
                    let start = at(start_offset);
                    let free = subnet
                        .hosts()
                        .filter(|ip| *ip >= start && *ip != gateway && *ip != at(host_offset))
                        .filter(|ip| !explicit.contains(ip))
                        .count();
                    prop_assert!(free < *needed, "{free} free but planner said too small");
                }
            }
        }
    }
}
