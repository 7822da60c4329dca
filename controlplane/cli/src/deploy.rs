//! `deploy` and `config check`: build a fleet request from flags or an INI file, plan it,
//! and (for now) render it as a compose file.

use std::{fs, io::Write as _, path::Path};

use decnet_fleet::{
    ErrorKind, FleetError, Location,
    archetype::{archetype, archetype_slugs},
    catalog::{Catalog, CatalogError},
    compose,
    config::{self, is_valid_ifname},
    distro::{distro, distro_slugs},
    ini::MAX_INI_BYTES,
    plan::{FleetPlan, PlanOptions, plan},
    spec::{DeckySpec, FleetSpec},
};

use crate::{
    args::{CheckArgs, DeployArgs, PlanArgs},
    failure::Failure,
    hostnet,
    listings::{print_json, table},
};

/// Most deckies one command-line request may ask for.
const MAX_DECKIES: u32 = 4096;

fn flag_error(flag: &str, kind: ErrorKind) -> Failure {
    Failure::fleet(
        None,
        &FleetError::new(Location::at(None, "command line", Some(flag)), kind),
    )
}

fn read_config(path: &Path) -> Result<Vec<u8>, Failure> {
    use std::io::Read as _;
    let file = fs::File::open(path)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", path.display())))?;
    // Read one byte past the limit instead of trusting the size the file system reports:
    // pipes and devices (`/dev/zero`) have none.
    let mut bytes = Vec::new();
    file.take(MAX_INI_BYTES as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| Failure::runtime(format!("cannot read {}: {e}", path.display())))?;
    if bytes.len() > MAX_INI_BYTES {
        return Err(Failure::config(format!(
            "{}: the file is larger than {MAX_INI_BYTES} bytes, the limit for configuration files",
            path.display()
        )));
    }
    Ok(bytes)
}

fn load_file(path: &Path) -> Result<FleetSpec, Failure> {
    let bytes = read_config(path)?;
    config::load(&bytes).map_err(|e| Failure::fleet(Some(&path.display().to_string()), &e))
}

/// Fleet request from `-n/--services/--archetype/--randomize-services`.
fn spec_from_flags(args: &DeployArgs) -> Result<FleetSpec, Failure> {
    let count = args.deckies.ok_or_else(|| {
        Failure::config("pass --deckies N (with --services, --archetype or --randomize-services) or --config FILE")
    })?;
    if !(1..=MAX_DECKIES).contains(&count) {
        return Err(Failure::config(format!(
            "--deckies {count} is out of range; use 1 to {MAX_DECKIES}"
        )));
    }
    let catalog = Catalog::builtin();
    let services = if args.services.is_empty() {
        None
    } else {
        let mut list: Vec<String> = Vec::new();
        for slug in args
            .services
            .iter()
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
        {
            catalog.resolve(slug).map_err(|e| {
                let kind = match e {
                    CatalogError::FleetSingleton(s) => ErrorKind::FleetSingleton(s),
                    _ => ErrorKind::UnknownService {
                        slug: slug.to_owned(),
                        known: catalog.per_decky_slugs().join(", "),
                    },
                };
                flag_error("--services", kind)
            })?;
            if list.iter().any(|s| s == slug) {
                return Err(flag_error(
                    "--services",
                    ErrorKind::DuplicateService(slug.to_owned()),
                ));
            }
            list.push(slug.to_owned());
        }
        Some(list)
    };
    let archetype = match &args.archetype {
        Some(slug) => Some(archetype(slug).ok_or_else(|| {
            flag_error(
                "--archetype",
                ErrorKind::UnknownArchetype {
                    slug: slug.clone(),
                    known: archetype_slugs().join(", "),
                },
            )
        })?),
        None => None,
    };
    if services.is_none() && archetype.is_none() && !args.randomize_services {
        return Err(flag_error("--deckies", ErrorKind::NoServiceSource));
    }
    let width = count.to_string().len().max(2);
    let deckies = (1..=count)
        .map(|n| DeckySpec {
            name: format!("host-{n:0width$}"),
            services: services.clone(),
            archetype,
            ..DeckySpec::default()
        })
        .collect();
    Ok(FleetSpec {
        deckies,
        catalog,
        ..FleetSpec::default()
    })
}

/// Apply network flags and machine defaults, then plan.
fn plan_spec(
    mut spec: FleetSpec,
    args: &PlanArgs,
    randomize_services: bool,
    source: Option<&str>,
) -> Result<FleetPlan, Failure> {
    let net = &mut spec.network;
    if let Some(subnet) = args.subnet {
        if subnet.network() != subnet.addr() {
            return Err(flag_error(
                "--subnet",
                ErrorKind::Invalid {
                    what: "subnet",
                    value: subnet.to_string(),
                    why: format!("host bits are set; did you mean {}?", subnet.trunc()),
                },
            ));
        }
        net.subnet = Some(subnet);
    }
    if let Some(ifname) = &args.interface {
        if !is_valid_ifname(ifname) {
            return Err(flag_error(
                "--interface",
                ErrorKind::Invalid {
                    what: "interface",
                    value: ifname.clone(),
                    why: "expected a Linux interface name (1-15 characters)".into(),
                },
            ));
        }
        net.interface = Some(ifname.clone());
    }
    net.ipvlan |= args.ipvlan;
    if args.gateway.is_some() {
        net.gateway = args.gateway;
    }
    if args.ip_start.is_some() {
        net.ip_start = args.ip_start;
    }
    let route = hostnet::default_route();
    if net.interface.is_none() {
        net.interface = route.as_ref().map(|r| r.interface.clone());
    }
    if let Some(subnet) = net.subnet {
        if net.gateway.is_none() {
            net.gateway = route
                .as_ref()
                .map(|r| r.gateway)
                .filter(|gw| subnet.contains(gw));
        }
        // The appliance's own addresses and the LAN's real router are never handed out,
        // whatever gateway the fleet is told to use.
        net.host_ips = hostnet::local_ipv4()
            .into_iter()
            .chain(route.as_ref().map(|r| r.gateway))
            .filter(|ip| subnet.contains(ip))
            .collect();
    }
    let mut distros = Vec::new();
    for slug in &args.distro {
        distros.push(distro(slug.trim()).ok_or_else(|| {
            flag_error(
                "--distro",
                ErrorKind::UnknownDistro {
                    slug: slug.clone(),
                    known: distro_slugs().join(", "),
                },
            )
        })?);
    }
    if let Some(m) = args.mutate_interval
        && m > config::MAX_MUTATE_MINUTES
    {
        return Err(flag_error(
            "--mutate-interval",
            ErrorKind::Invalid {
                what: "mutate interval",
                value: m.to_string(),
                why: format!(
                    "expected minutes from 0 (never) to {}",
                    config::MAX_MUTATE_MINUTES
                ),
            },
        ));
    }
    let options = PlanOptions {
        randomize_services,
        distros,
        randomize_distros: args.randomize_distros,
        mutate_interval: args.mutate_interval,
        seed: args.seed,
    };
    plan(spec, &options).map_err(|e| Failure::fleet(source, &e))
}

fn print_plan(plan: &FleetPlan) {
    let mut t = table(&["DECKY", "IP", "MAC", "HOSTNAME", "DISTRO", "OS", "SERVICES"]);
    for d in &plan.deckies {
        t.add_row(vec![
            d.name.clone(),
            d.ip.to_string(),
            d.mac
                .map_or_else(|| "(parent's)".to_owned(), |m| m.to_string()),
            d.hostname.clone(),
            d.distro.to_owned(),
            d.os.to_string(),
            d.services.join(", "),
        ]);
    }
    println!("{t}");
    let n = &plan.network;
    println!(
        "{} deckies on {} (gateway {}, {} on {}, ip-range {}), seed {}",
        plan.deckies.len(),
        n.subnet,
        n.gateway,
        if n.ipvlan { "ipvlan" } else { "macvlan" },
        n.interface.as_deref().unwrap_or("(no interface)"),
        n.ip_range,
        plan.seed
    );
}

/// Write `text` to `path` atomically (temporary file in the same directory, then rename). A
/// path that exists and is not a regular file (`/dev/stdout`, `/dev/null`, a FIFO) is written
/// in place: renaming over it would replace the device with a plain file.
fn write_atomic(path: &Path, text: &str) -> Result<(), Failure> {
    if fs::metadata(path).is_ok_and(|m| !m.is_file()) {
        return fs::OpenOptions::new()
            .write(true)
            .open(path)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .map_err(|e| Failure::runtime(format!("cannot write {}: {e}", path.display())));
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
    let result = fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(text.as_bytes()).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    result.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Failure::runtime(format!("cannot write {}: {e}", path.display()))
    })
}

/// The plan of an INI text sent to the API (`POST /deckies/deploy`), with the planner's
/// defaults for everything the INI leaves out: the same rules as `decnet deploy --config`.
pub fn plan_ini(ini: &[u8]) -> Result<FleetPlan, Failure> {
    if ini.len() > MAX_INI_BYTES {
        return Err(Failure::config(format!(
            "ini_content is larger than {MAX_INI_BYTES} bytes"
        )));
    }
    let spec = config::load(ini).map_err(|e| Failure::fleet(Some("ini_content"), &e))?;
    let defaults = PlanArgs {
        interface: None,
        subnet: None,
        gateway: None,
        ip_start: None,
        randomize_distros: false,
        distro: Vec::new(),
        mutate_interval: None,
        ipvlan: false,
        seed: None,
    };
    plan_spec(spec, &defaults, false, Some("ini_content"))
}

pub fn deploy(args: &DeployArgs, json: bool) -> Result<(), Failure> {
    let (spec, source) = match &args.config {
        Some(path) => {
            if args.deckies.is_some() || !args.services.is_empty() || args.archetype.is_some() {
                return Err(Failure::config(
                    "--config describes the whole fleet; drop --deckies/--services/--archetype",
                ));
            }
            (load_file(path)?, Some(path.display().to_string()))
        }
        None => (spec_from_flags(args)?, None),
    };
    let plan = plan_spec(spec, &args.plan, args.randomize_services, source.as_deref())?;
    if !args.dry_run {
        return crate::fleet::deploy(&args.store, &args.engine, &plan, json);
    }
    let file = compose::compose(&plan);
    let yaml = compose::to_yaml(&file)
        .map_err(|e| Failure::runtime(format!("cannot render the compose file: {e}")))?;
    write_atomic(&args.output, &yaml)?;
    if json {
        let value = serde_json::json!({
            "plan": plan,
            "compose_file": args.output.display().to_string(),
            "containers": file.services.len(),
        });
        return print_json(&value);
    }
    print_plan(&plan);
    println!(
        "wrote {} ({} containers)",
        args.output.display(),
        file.services.len()
    );
    Ok(())
}

pub fn check(args: &CheckArgs, json: bool) -> Result<(), Failure> {
    let spec = load_file(&args.file)?;
    let source = args.file.display().to_string();
    let plan = plan_spec(spec, &args.plan, false, Some(&source))?;
    if json {
        let value = serde_json::to_value(&plan)
            .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
        return print_json(&value);
    }
    print_plan(&plan);
    println!("{source}: OK");
    Ok(())
}
