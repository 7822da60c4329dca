// SPDX-License-Identifier: GPL-2.0
// XDP side of the capture path: frames the sensor wants go to the AF_XDP socket bound to the
// frame's RX queue; everything else goes on to the kernel stack untouched.
//
// Map and counter layout is an ABI shared with dataplane/src/capture/xdp.rs: change both together.
//
// Build (deterministic; scripts/build-ebpf.sh and ebpf/build.rs run exactly this from ebpf/src):
//   clang -O2 -g -target bpf -I/usr/include/x86_64-linux-gnu -fdebug-compilation-dir=. \
//         -c xdp_capture.c -o xdp_capture.o
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// config[0] flags.
#define CFG_CAPTURE_ALL 1u // redirect every frame, skip the filter (dedicated capture ports)
#define CFG_PORTS 2u       // TCP/UDP frames must also hit the port set

// counters indices (per CPU).
#define CNT_SEEN 0       // every frame the program ran on
#define CNT_REDIRECTED 1 // handed to an AF_XDP socket
#define CNT_PASSED 2     // did not match the filter: left to the kernel stack
#define CNT_DROPPED 3    // matched, but no socket on this queue: left to the stack, not captured
#define CNT_MAX 4

#define MAX_QUEUES 64

struct lpm_v4 {
	__u32 prefixlen;
	__u8 addr[4];
};
struct lpm_v6 {
	__u32 prefixlen;
	__u8 addr[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC); // the kernel requires it for LPM tries
	__type(key, struct lpm_v4);
	__type(value, __u8);
} filter_v4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, 1024);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct lpm_v6);
	__type(value, __u8);
} filter_v6 SEC(".maps");

// Ports in host byte order.
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u16);
	__type(value, __u8);
} ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);
	if (c)
		*c += 1;
}

// 1 when the L4 header at `l4` carries a port of the set (or the frame is not TCP/UDP: other
// protocols, ICMP above all, are captured on address alone), 0 otherwise.
static __always_inline int port_match(void *l4, void *end, __u8 proto)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return 1;
	// Source and destination ports are the first 4 bytes of both TCP and UDP headers.
	__be16 *p = l4;
	if ((void *)(p + 2) > end)
		return 0;
	__u16 sport = bpf_ntohs(p[0]);
	__u16 dport = bpf_ntohs(p[1]);
	return bpf_map_lookup_elem(&ports, &sport) || bpf_map_lookup_elem(&ports, &dport);
}

// 1 when the frame is one the sensor wants (an address in the prefix set and, if enabled, a port
// in the port set). Frames it cannot parse (ARP, truncated, other ethertypes) are not wanted:
// they go on to the stack, which keeps ARP/ND working on a shared interface.
static __always_inline int wanted(struct xdp_md *ctx, __u32 flags)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 0;
	__u16 proto = eth->h_proto;
	void *l3 = eth + 1;
	// Up to two VLAN tags (802.1Q, 802.1ad QinQ); unrolled for the verifier.
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_hdr *vh = l3;
		if ((void *)(vh + 1) > end)
			return 0;
		proto = vh->proto;
		l3 = vh + 1;
	}

	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return 0;
		struct lpm_v4 key = {.prefixlen = 32};
		__builtin_memcpy(key.addr, &ip->saddr, 4);
		int hit = bpf_map_lookup_elem(&filter_v4, &key) != 0;
		if (!hit) {
			__builtin_memcpy(key.addr, &ip->daddr, 4);
			hit = bpf_map_lookup_elem(&filter_v4, &key) != 0;
		}
		if (!hit)
			return 0;
		if (!(flags & CFG_PORTS))
			return 1;
		// Later fragments carry no L4 header: capture them on address alone.
		if (ip->frag_off & bpf_htons(0x1fff))
			return 1;
		__u32 ihl = ip->ihl * 4;
		if (ihl < sizeof(*ip))
			return 0;
		return port_match(l3 + ihl, end, ip->protocol);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return 0;
		struct lpm_v6 key = {.prefixlen = 128};
		__builtin_memcpy(key.addr, &ip6->saddr, 16);
		int hit = bpf_map_lookup_elem(&filter_v6, &key) != 0;
		if (!hit) {
			__builtin_memcpy(key.addr, &ip6->daddr, 16);
			hit = bpf_map_lookup_elem(&filter_v6, &key) != 0;
		}
		if (!hit)
			return 0;
		if (!(flags & CFG_PORTS))
			return 1;
		// Only a TCP/UDP header right after the fixed header is looked at; extension-header
		// chains are captured on address alone (port_match treats them as "other protocol").
		return port_match(ip6 + 1, end, ip6->nexthdr);
	}
	return 0;
}

SEC("xdp")
int xdp_capture(struct xdp_md *ctx)
{
	count(CNT_SEEN);
	__u32 zero = 0;
	__u32 *cfg = bpf_map_lookup_elem(&config, &zero);
	__u32 flags = cfg ? *cfg : 0;
	if (!(flags & CFG_CAPTURE_ALL) && !wanted(ctx, flags)) {
		count(CNT_PASSED);
		return XDP_PASS;
	}
	// XDP_PASS as the fallback: with no socket on this queue the frame still reaches the stack.
	long act = bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
	count(act == XDP_REDIRECT ? CNT_REDIRECTED : CNT_DROPPED);
	return act;
}

char _license[] SEC("license") = "GPL";
