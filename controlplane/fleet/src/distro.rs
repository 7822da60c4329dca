//! Distros a decky's persona can claim, and how each names its hosts.

use serde::Serialize;

/// How a distro's administrators tend to name hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostnameStyle {
    /// `SRV-WORD-nn`
    Generic,
    /// `wordnn.localdomain`
    Rhel,
    /// `word-nn`
    Minimal,
    /// `word-word`
    Rolling,
}

/// A distro persona. The base container is always the appliance's own tiny image; the distro
/// decides what the services claim to run on (banners, kernel, shell filesystem).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Distro {
    pub slug: &'static str,
    pub display: &'static str,
    /// The upstream image the original used; kept as the persona's reference system.
    pub reference_image: &'static str,
    pub hostname_style: HostnameStyle,
    /// `uname -r` of a freshly updated install.
    pub kernel: &'static str,
}

pub const DISTROS: [Distro; 9] = [
    Distro {
        slug: "debian",
        display: "Debian 12",
        reference_image: "debian:bookworm-slim",
        hostname_style: HostnameStyle::Generic,
        kernel: "6.1.0-27-amd64",
    },
    Distro {
        slug: "ubuntu22",
        display: "Ubuntu 22.04",
        reference_image: "ubuntu:22.04",
        hostname_style: HostnameStyle::Generic,
        kernel: "5.15.0-125-generic",
    },
    Distro {
        slug: "ubuntu20",
        display: "Ubuntu 20.04",
        reference_image: "ubuntu:20.04",
        hostname_style: HostnameStyle::Generic,
        kernel: "5.4.0-200-generic",
    },
    Distro {
        slug: "rocky9",
        display: "Rocky 9",
        reference_image: "rockylinux:9-minimal",
        hostname_style: HostnameStyle::Rhel,
        kernel: "5.14.0-427.42.1.el9_4.x86_64",
    },
    Distro {
        slug: "centos7",
        display: "CentOS 7",
        reference_image: "centos:7",
        hostname_style: HostnameStyle::Rhel,
        kernel: "3.10.0-1160.119.1.el7.x86_64",
    },
    Distro {
        slug: "alpine",
        display: "Alpine 3.19",
        reference_image: "alpine:3.19",
        hostname_style: HostnameStyle::Minimal,
        kernel: "6.6.58-0-lts",
    },
    Distro {
        slug: "fedora",
        display: "Fedora 39",
        reference_image: "fedora:39",
        hostname_style: HostnameStyle::Rhel,
        kernel: "6.11.9-100.fc39.x86_64",
    },
    Distro {
        slug: "kali",
        display: "Kali",
        reference_image: "kalilinux/kali-rolling",
        hostname_style: HostnameStyle::Rolling,
        kernel: "6.11.2-amd64",
    },
    Distro {
        slug: "arch",
        display: "Arch",
        reference_image: "archlinux:latest",
        hostname_style: HostnameStyle::Rolling,
        kernel: "6.12.1-arch1-1",
    },
];

/// Look a distro up by slug.
pub fn distro(slug: &str) -> Option<&'static Distro> {
    DISTROS.iter().find(|d| d.slug == slug)
}

/// All distro slugs, in table order.
pub fn distro_slugs() -> Vec<&'static str> {
    DISTROS.iter().map(|d| d.slug).collect()
}
