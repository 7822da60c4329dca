//! `services`, `archetypes`, `distros`: the catalogue as tables or JSON.

use comfy_table::{ContentArrangement, Table, presets::UTF8_BORDERS_ONLY};
use decnet_fleet::{
    archetype::ARCHETYPES,
    catalog::{Catalog, ImageSource, ServicePlugin},
    distro::DISTROS,
};
use serde_json::json;

use crate::failure::Failure;

pub fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_preset(UTF8_BORDERS_ONLY)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_header(header.iter().copied());
    t
}

pub fn print_json(value: &serde_json::Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

fn ports_text(service: &dyn ServicePlugin) -> String {
    let ports: Vec<String> = service.ports().iter().map(ToString::to_string).collect();
    if ports.is_empty() {
        "(fleet-wide)".to_owned()
    } else {
        ports.join(", ")
    }
}

pub fn services(json: bool) -> Result<(), Failure> {
    let catalog = Catalog::builtin();
    let all = catalog.all();
    if json {
        let list: Vec<serde_json::Value> = all
            .iter()
            .map(|s| {
                let persona: Vec<serde_json::Value> = s
                    .persona_keys()
                    .iter()
                    .map(|k| {
                        json!({"key": k.key, "env": k.env, "kind": k.kind.describe(),
                               "default": k.default, "doc": k.doc})
                    })
                    .collect();
                let image = match s.image() {
                    ImageSource::Emulator => "emulator".to_owned(),
                    ImageSource::Prebuilt(image) => image,
                };
                json!({"slug": s.slug(), "summary": s.summary(), "ports": s.ports(),
                       "fleet_singleton": s.fleet_singleton(), "image": image, "persona": persona})
            })
            .collect();
        return print_json(&serde_json::Value::Array(list));
    }
    let mut t = table(&["SERVICE", "PORTS", "PERSONA KEYS", "WHAT IT IS"]);
    for s in &all {
        let keys: Vec<&str> = s.persona_keys().iter().map(|k| k.key).collect();
        t.add_row(vec![
            s.slug().to_owned(),
            ports_text(*s),
            keys.join(", "),
            s.summary().to_owned(),
        ]);
    }
    println!("{t}");
    println!(
        "{} services ({} per decky, 1 fleet-wide)",
        all.len(),
        catalog.per_decky_slugs().len()
    );
    Ok(())
}

pub fn archetypes(json: bool) -> Result<(), Failure> {
    if json {
        let value = serde_json::to_value(ARCHETYPES)
            .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
        return print_json(&value);
    }
    let mut t = table(&["ARCHETYPE", "OS", "SERVICES", "DISTROS", "DESCRIPTION"]);
    for a in &ARCHETYPES {
        t.add_row(vec![
            a.slug.to_owned(),
            a.os.to_string(),
            a.services.join(", "),
            a.preferred_distros.join(", "),
            a.description.to_owned(),
        ]);
    }
    println!("{t}");
    println!("{} archetypes", ARCHETYPES.len());
    Ok(())
}

pub fn distros(json: bool) -> Result<(), Failure> {
    if json {
        let value = serde_json::to_value(DISTROS)
            .map_err(|e| Failure::runtime(format!("cannot render JSON: {e}")))?;
        return print_json(&value);
    }
    let mut t = table(&[
        "DISTRO",
        "DISPLAY",
        "HOSTNAME STYLE",
        "KERNEL",
        "REFERENCE IMAGE",
    ]);
    for d in &DISTROS {
        let style = serde_json::to_value(d.hostname_style)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        t.add_row(vec![
            d.slug.to_owned(),
            d.display.to_owned(),
            style,
            d.kernel.to_owned(),
            d.reference_image.to_owned(),
        ]);
    }
    println!("{t}");
    println!("{} distros", DISTROS.len());
    Ok(())
}
