//! Archetypes: named machine roles with their services, OS family and preferred distros.

use serde::Serialize;

use crate::os::OsFamily;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Archetype {
    pub slug: &'static str,
    pub description: &'static str,
    pub services: &'static [&'static str],
    pub os: OsFamily,
    pub preferred_distros: &'static [&'static str],
}

pub const ARCHETYPES: [Archetype; 15] = [
    Archetype {
        slug: "windows-workstation",
        description: "Windows desktop in a domain",
        services: &["smb", "rdp"],
        os: OsFamily::Windows,
        preferred_distros: &["debian", "ubuntu22"],
    },
    Archetype {
        slug: "windows-server",
        description: "Windows member server",
        services: &["smb", "rdp", "ldap"],
        os: OsFamily::WindowsServer,
        preferred_distros: &["debian", "ubuntu22"],
    },
    Archetype {
        slug: "domain-controller",
        description: "Active Directory domain controller",
        services: &["ldap", "smb", "rdp", "llmnr"],
        os: OsFamily::WindowsServer,
        preferred_distros: &["debian", "ubuntu22"],
    },
    Archetype {
        slug: "linux-server",
        description: "general-purpose Linux server",
        services: &["ssh", "http"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "ubuntu22", "rocky9", "fedora"],
    },
    Archetype {
        slug: "web-server",
        description: "public web host with FTP uploads",
        services: &["http", "ftp"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "ubuntu22", "ubuntu20"],
    },
    Archetype {
        slug: "database-server",
        description: "database back end",
        services: &["mysql", "postgres", "redis"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "ubuntu22"],
    },
    Archetype {
        slug: "mail-server",
        description: "mail exchanger with user mailboxes",
        services: &["smtp", "pop3", "imap"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "ubuntu22"],
    },
    Archetype {
        slug: "file-server",
        description: "file server (SMB, FTP, SSH)",
        services: &["smb", "ftp", "ssh"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "ubuntu22", "rocky9"],
    },
    Archetype {
        slug: "printer",
        description: "network printer",
        services: &["snmp", "ftp"],
        os: OsFamily::Embedded,
        preferred_distros: &["alpine", "debian"],
    },
    Archetype {
        slug: "iot-device",
        description: "IoT gateway",
        services: &["mqtt", "snmp", "telnet"],
        os: OsFamily::Embedded,
        preferred_distros: &["alpine"],
    },
    Archetype {
        slug: "industrial-control",
        description: "PLC / industrial controller",
        services: &["conpot", "snmp"],
        os: OsFamily::Embedded,
        preferred_distros: &["debian"],
    },
    Archetype {
        slug: "voip-server",
        description: "SIP PBX",
        services: &["sip"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "ubuntu22"],
    },
    Archetype {
        slug: "monitoring-node",
        description: "monitoring host",
        services: &["snmp", "ssh"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "rocky9"],
    },
    Archetype {
        slug: "devops-host",
        description: "container and cluster host",
        services: &["docker_api", "ssh", "k8s"],
        os: OsFamily::Linux,
        preferred_distros: &["ubuntu22", "debian"],
    },
    Archetype {
        slug: "deaddeck",
        description: "internet-facing entry point with an interactive SSH shell",
        services: &["ssh"],
        os: OsFamily::Linux,
        preferred_distros: &["debian", "ubuntu22"],
    },
];

/// Look an archetype up by slug.
pub fn archetype(slug: &str) -> Option<&'static Archetype> {
    ARCHETYPES.iter().find(|a| a.slug == slug)
}

/// All archetype slugs, in table order.
pub fn archetype_slugs() -> Vec<&'static str> {
    ARCHETYPES.iter().map(|a| a.slug).collect()
}
