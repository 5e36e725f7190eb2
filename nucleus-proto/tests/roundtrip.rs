//! Property tests: every record type survives domain → wire → bytes →
//! wire → domain unchanged, and its JSON view stays byte-identical. The
//! domain values cover the sensor's own forms (packed uids, flag letters,
//! table states, computed Community IDs and durations) and any other value
//! the types can hold, which must travel in the fallback fields.

// Test code: a failed expectation must stop the test with its message.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod common;

use nucleus_proto::batch::{BatchLimits, Compression, block, decode_block, open, seal};
use nucleus_proto::community_id::CommunityId;
use nucleus_proto::dns_names::{opcode, rcode, rtype};
use nucleus_proto::*;
use proptest::prelude::*;
use prost::Message;
use std::net::IpAddr;
use std::sync::Arc;

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(IpAddr::from),
        any::<[u8; 16]>().prop_map(IpAddr::from),
    ]
}

fn text() -> impl Strategy<Value = String> {
    prop_oneof![".{0,12}", "[a-z0-9./:-]{0,24}"]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn uid() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "C[0-9A-Za-z]{18}",
        1 => text(),
    ]
}

fn ts() -> impl Strategy<Value = TimestampMicros> {
    prop_oneof![
        3 => 1_600_000_000_000_000i64..1_800_000_000_000_000,
        1 => any::<i64>(),
    ]
    .prop_map(TimestampMicros)
}

/// Finite, infinite and signed doubles; not NaN, which equals nothing.
fn double() -> impl Strategy<Value = f64> {
    use proptest::num::f64::*;
    NORMAL | SUBNORMAL | ZERO | INFINITE | NEGATIVE | POSITIVE
}

fn tcp_flags() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(prop_oneof![
        3 => any::<u8>().prop_map(|b| {
            "FSRPAUEC"
                .chars()
                .enumerate()
                .filter(|(i, _)| b & (1 << i) != 0)
                .map(|(_, c)| c)
                .collect()
        }),
        1 => "[A-Z]{0,4}",
    ])
}

fn conn_state() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec!["S0", "S1", "SF", "REJ", "S2", "S3", "RSTO", "RSTR", "RSTOS0", "RSTRH", "SH", "SHR", "OTH"])
            .prop_map(str::to_string),
        1 => text(),
    ]
}

fn tunnel_layer() -> BoxedStrategy<TunnelLayer> {
    prop_oneof![
        (any::<u32>(), ip(), ip()).prop_map(|(vni, outer_src, outer_dst)| TunnelLayer::Vxlan {
            vni,
            outer_src,
            outer_dst
        }),
        (
            any::<u32>(),
            ip(),
            ip(),
            proptest::option::of((opt_text(), opt_text(), any::<Option<u32>>())),
            prop::collection::vec((any::<u16>(), any::<u8>(), any::<u16>()), 0..3)
        )
            .prop_map(|(vni, outer_src, outer_dst, g, o)| TunnelLayer::Geneve {
                vni,
                outer_src,
                outer_dst,
                aws_gwlb: g.map(|(endpoint_id, attachment_id, flow_cookie)| AwsGwlb {
                    endpoint_id,
                    attachment_id,
                    flow_cookie
                }),
                options: o
                    .into_iter()
                    .map(|(class, option_type, len)| GeneveOption {
                        class,
                        option_type,
                        len
                    })
                    .collect(),
            }),
        (any::<u16>(), any::<u16>()).prop_map(|(id, tpid)| TunnelLayer::Vlan { id, tpid }),
        any::<u32>().prop_map(|label| TunnelLayer::Mpls { label }),
        (ip(), ip(), any::<u16>(), any::<Option<u32>>()).prop_map(
            |(outer_src, outer_dst, protocol, key)| TunnelLayer::Gre {
                outer_src,
                outer_dst,
                protocol,
                key
            }
        ),
        (
            any::<u8>(),
            any::<Option<u16>>(),
            any::<Option<u16>>(),
            ip(),
            ip()
        )
            .prop_map(|(version, session_id, vlan, outer_src, outer_dst)| {
                TunnelLayer::Erspan {
                    version,
                    session_id,
                    vlan,
                    outer_src,
                    outer_dst,
                }
            }),
        (ip(), ip()).prop_map(|(outer_src, outer_dst)| TunnelLayer::IpInIp {
            outer_src,
            outer_dst
        }),
        (ip(), ip()).prop_map(|(outer_src, outer_dst)| TunnelLayer::Teredo {
            outer_src,
            outer_dst
        }),
        (ip(), ip()).prop_map(|(outer_src, outer_dst)| TunnelLayer::Ayiya {
            outer_src,
            outer_dst
        }),
        (any::<u32>(), ip(), ip()).prop_map(|(teid, outer_src, outer_dst)| TunnelLayer::Gtp {
            teid,
            outer_src,
            outer_dst
        }),
    ]
    .boxed()
}

/// An instance as the enrollment inventory describes it, or any other
/// strings; some flows share one (interned once per block).
fn instance() -> impl Strategy<Value = Arc<Instance>> {
    prop_oneof![
        Just(Arc::new(Instance {
            instance_id: "i-0123456789abcdef0".into(),
            eni_id: "eni-0a1b2c3d4e5f60718".into(),
            vpc_id: "vpc-1".into(),
            subnet_id: "subnet-1".into(),
            availability_zone: "us-east-1a".into(),
            tags: [("Name".to_string(), "web-1".to_string())].into(),
        })),
        (
            (text(), text(), text(), text(), text()),
            prop::collection::btree_map(text(), text(), 0..3),
        )
            .prop_map(
                |((instance_id, eni_id, vpc_id, subnet_id, availability_zone), tags)| {
                    Arc::new(Instance {
                        instance_id,
                        eni_id,
                        vpc_id,
                        subnet_id,
                        availability_zone,
                        tags,
                    })
                }
            ),
    ]
}

/// A 5-tuple with the Community ID the sensor computes for it, or another.
fn tuple_and_id(cid: CommunityId) -> impl Strategy<Value = (u8, IpAddr, u16, IpAddr, u16, String)> {
    (
        any::<u8>(),
        ip(),
        any::<u16>(),
        ip(),
        any::<u16>(),
        proptest::option::weighted(0.2, text()),
    )
        .prop_map(move |(p, s, sp, d, dp, other)| {
            let id = other.unwrap_or_else(|| cid.compute(s, d, p, sp, dp));
            (p, s, sp, d, dp, id)
        })
}

fn flow(cid: CommunityId) -> BoxedStrategy<Record> {
    (
        (
            ts(),
            any::<i32>(),
            uid(),
            tuple_and_id(cid),
            any::<[u64; 6]>(),
        ),
        (
            tcp_flags(),
            tcp_flags(),
            conn_state(),
            text(),
            any::<(u64, u64)>(),
        ),
        (
            proptest::option::weighted(0.2, double()),
            opt_text(),
            prop::collection::vec(tunnel_layer(), 0..3),
            any::<u32>(),
            any::<u64>(),
            proptest::option::of(instance()),
        ),
    )
        .prop_map(
            |(
                (ts, span, uid, (p, s, sp, d, dp, community_id), c),
                (of, rf, conn_state, history, (missed, trunc)),
                (dur, service, tunnel, vantages, dups, vantage),
            )| {
                let end_ts = TimestampMicros(ts.0.wrapping_add(i64::from(span)));
                Record::Flow(Box::new(FlowRecord {
                    ts,
                    end_ts,
                    uid,
                    community_id,
                    proto: Proto(p),
                    src_ip: s,
                    src_port: sp,
                    dst_ip: d,
                    dst_port: dp,
                    orig_pkts: c[0],
                    orig_bytes: c[1],
                    orig_ip_bytes: c[2],
                    resp_pkts: c[3],
                    resp_bytes: c[4],
                    resp_ip_bytes: c[5],
                    orig_tcp_flags: of,
                    resp_tcp_flags: rf,
                    conn_state,
                    history,
                    missed_bytes: missed,
                    truncated_bytes: trunc,
                    // The sensor's own duration, or any other.
                    duration: dur.unwrap_or(i64::from(span) as f64 / 1e6),
                    service,
                    tunnel,
                    vantages,
                    duplicate_pkts: dups,
                    vantage,
                }))
            },
        )
        .boxed()
}

fn flow_ref(cid: CommunityId) -> impl Strategy<Value = FlowRef> {
    (uid(), tuple_and_id(cid)).prop_map(|(uid, (p, s, sp, d, dp, community_id))| FlowRef {
        uid,
        community_id,
        proto: Proto(p),
        src_ip: s,
        src_port: sp,
        dst_ip: d,
        dst_port: dp,
    })
}

fn app<T: std::fmt::Debug + Clone>(
    cid: CommunityId,
    body: impl Strategy<Value = T>,
) -> impl Strategy<Value = AppRecord<T>> {
    (ts(), flow_ref(cid), any::<u64>(), body).prop_map(|(ts, flow, seq, body)| AppRecord {
        ts,
        flow,
        seq,
        body,
    })
}

fn dns_body() -> BoxedStrategy<DnsRecord> {
    let answer =
        (text(), any::<u16>(), any::<u32>(), text()).prop_map(|(name, t, ttl, data)| DnsAnswer {
            name,
            rtype: rtype(t),
            ttl,
            data,
        });
    (
        (
            any::<u16>(),
            proptest::option::of(double()),
            opt_text(),
            any::<Option<u16>>(),
            any::<Option<u16>>(),
        ),
        (
            any::<u8>(),
            any::<Option<u16>>(),
            any::<[bool; 6]>(),
            prop::collection::vec(answer, 0..4),
        ),
    )
        .prop_map(
            |((trans_id, rtt, query, qclass, qtype), (op, rc, f, answers))| DnsRecord {
                trans_id,
                rtt,
                query,
                qclass,
                qtype: qtype.map(rtype),
                opcode: opcode(op),
                rcode: rc.map(rcode),
                aa: f[0],
                tc: f[1],
                rd: f[2],
                ra: f[3],
                answers,
                unanswered: f[4],
                unsolicited: f[5],
            },
        )
        .boxed()
}

fn http_body() -> BoxedStrategy<HttpRecord> {
    (
        (
            any::<u32>(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            any::<Option<u16>>(),
            opt_text(),
            any::<u64>(),
            any::<u64>(),
            opt_text(),
            any::<Option<u16>>(),
        ),
    )
        .prop_map(
            |(
                (trans_depth, method, host, uri, version, user_agent),
                (status_code, status_msg, rq, rs, content_type, info_code),
            )| HttpRecord {
                trans_depth,
                method,
                host,
                uri,
                version,
                user_agent,
                status_code,
                status_msg,
                request_body_len: rq,
                response_body_len: rs,
                content_type,
                info_code,
            },
        )
        .boxed()
}

fn tls_body() -> BoxedStrategy<TlsRecord> {
    let cert = (
        (
            text(),
            text(),
            prop::collection::vec(text(), 0..3),
            prop::collection::vec(text(), 0..2),
            text(),
        ),
        (text(), text(), text(), any::<u32>(), text()),
    )
        .prop_map(
            |(
                (subject, issuer, san_dns, san_ip, serial),
                (not_before, not_after, key_type, key_bits, sha256),
            )| Certificate {
                subject,
                issuer,
                san_dns,
                san_ip,
                serial,
                not_before,
                not_after,
                key_type,
                key_bits,
                sha256,
            },
        );
    let alert = (text(), text(), text()).prop_map(|(from, level, description)| TlsAlert {
        from,
        level,
        description,
    });
    (
        (
            opt_text(),
            opt_text(),
            prop::collection::vec(text(), 0..3),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            any::<[bool; 4]>(),
            prop::collection::vec(cert, 0..3),
        ),
        (
            opt_text(),
            prop::collection::vec(alert, 0..3),
            any::<u32>(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
    )
        .prop_map(
            |(
                (version, sni, alpn, alpn_selected, cipher, ja3),
                (ja3_string, ja3s, ja3s_string, ja4, b, certs),
                (
                    client_version,
                    alerts,
                    alerts_total,
                    last_alert,
                    hello_retry_ja3s,
                    first_hello_ja3,
                ),
            )| TlsRecord {
                version,
                sni,
                alpn,
                alpn_selected,
                cipher,
                ja3,
                ja3_string,
                ja3s,
                ja3s_string,
                ja4,
                resumed: b[0],
                certs,
                established: b[1],
                hello_retry_request: b[2],
                hello_retry_ja3s,
                first_hello_ja3,
                ech: b[3],
                client_version,
                alerts,
                alerts_total,
                last_alert,
            },
        )
        .boxed()
}

fn quic_body() -> BoxedStrategy<QuicRecord> {
    (
        opt_text(),
        opt_text(),
        prop::collection::vec(text(), 0..3),
        opt_text(),
        opt_text(),
        opt_text(),
        opt_text(),
    )
        .prop_map(|(version, sni, alpn, ja3, ja4, dcid, scid)| QuicRecord {
            version,
            sni,
            alpn,
            ja3,
            ja4,
            dcid,
            scid,
        })
        .boxed()
}

fn ssh_body() -> BoxedStrategy<SshRecord> {
    (
        (
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
        (
            opt_text(),
            any::<Option<u8>>(),
            opt_text(),
            opt_text(),
            opt_text(),
            opt_text(),
        ),
    )
        .prop_map(
            |(
                (client_banner, server_banner, hassh, hassh_server, kex, cipher),
                (mac, version, hassh_string, hassh_server_string, host_key_alg, compression),
            )| SshRecord {
                client_banner,
                server_banner,
                hassh,
                hassh_server,
                kex,
                cipher,
                mac,
                version,
                hassh_string,
                hassh_server_string,
                host_key_alg,
                compression,
            },
        )
        .boxed()
}

fn any_record(cid: CommunityId) -> BoxedStrategy<Record> {
    prop_oneof![
        flow(cid.clone()),
        app(cid.clone(), dns_body()).prop_map(|a| Record::Dns(Box::new(a))),
        app(cid.clone(), http_body()).prop_map(|a| Record::Http(Box::new(a))),
        app(cid.clone(), tls_body()).prop_map(|a| Record::Tls(Box::new(a))),
        app(cid.clone(), quic_body()).prop_map(|a| Record::Quic(Box::new(a))),
        app(cid, ssh_body()).prop_map(|a| Record::Ssh(Box::new(a))),
    ]
    .boxed()
}

fn settings() -> impl Strategy<Value = CommunityId> {
    (any::<u16>(), any::<bool>()).prop_map(|(seed, b64)| CommunityId::new(seed, b64))
}

/// Records and the Community ID settings their ids were computed with.
fn records() -> impl Strategy<Value = (CommunityId, Vec<Record>)> {
    settings().prop_flat_map(|cid| {
        (
            Just(cid.clone()),
            prop::collection::vec(any_record(cid), 0..12),
        )
    })
}

fn json(records: &[Record]) -> Vec<String> {
    records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap())
        .collect()
}

/// domain → block → bytes → domain.
fn through_block(cid: &CommunityId, records: &[Record]) -> Vec<Record> {
    let bytes = block(records, cid).encode_to_vec();
    decode_block(&bytes, u32::MAX).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_record_type_round_trips((cid, records) in records()) {
        let back = through_block(&cid, &records);
        prop_assert_eq!(&back, &records);
        prop_assert_eq!(json(&back), json(&records));
    }

    #[test]
    fn batches_round_trip_compressed_or_not((cid, records) in records(), level in 1i32..6, seq in any::<u64>()) {
        for c in [Compression::None, Compression::Zstd(level)] {
            let batch = seal(7, seq, &records, &cid, c).unwrap();
            let wire = batch.encode_to_vec();
            let batch = nucleus_proto::pb::Batch::decode(wire.as_slice()).unwrap();
            prop_assert_eq!((batch.epoch, batch.sequence), (7, seq));
            prop_assert_eq!(open(&batch, &BatchLimits::default()).unwrap(), records.clone());
        }
    }

    #[test]
    fn the_sensors_own_forms_leave_the_wire(cid in settings(), r in flow(CommunityId::new(0, true))) {
        // A flow whose uid, Community ID and duration are the sensor's own
        // forms sends none of them as text.
        let Record::Flow(mut f) = r else { unreachable!() };
        f.uid = "C6pJMQX9tuiXhgKsXmh".into();
        f.community_id = cid.compute(f.src_ip, f.dst_ip, f.proto.0, f.src_port, f.dst_port);
        f.duration = (f.end_ts.0.wrapping_sub(f.ts.0)) as f64 / 1e6;
        let records = [Record::Flow(f)];
        let b = block(&records, &cid);
        let w = b.flows.unwrap_or_default();
        prop_assert!(w.community_id.is_empty() && w.duration.is_empty() && w.uid_text.is_empty());
        prop_assert_eq!(w.uid_packed.len(), 14);
        prop_assert_eq!(through_block(&cid, &records), records.to_vec());
    }
}

#[test]
fn a_workload_shared_by_flows_travels_once_and_flows_without_one_cost_nothing() {
    let cid = CommunityId::new(0, true);
    let Record::Flow(plain) = common_flow() else {
        unreachable!()
    };
    let web = Arc::new(Instance {
        instance_id: "i-web".into(),
        eni_id: "eni-web".into(),
        vpc_id: "vpc-a".into(),
        subnet_id: "subnet-a".into(),
        availability_zone: "us-east-1a".into(),
        tags: [("Name".to_string(), "web".to_string())].into(),
    });
    let with = |v: Option<&Arc<Instance>>| {
        let mut f = plain.clone();
        f.vantage = v.cloned();
        Record::Flow(f)
    };
    let records = vec![
        with(Some(&web)),
        with(None),
        with(Some(&web)),
        with(Some(&web)),
    ];
    let b = block(&records, &cid);
    assert_eq!(b.instances.len(), 1);
    let columns = b.flows.clone().unwrap();
    assert_eq!(columns.vantage_ref, [1, 1, 1]);
    assert_eq!(columns.vantage_ref_gaps, [0, 1, 0]);
    assert_eq!(through_block(&cid, &records), records);
    // Without workloads neither the list nor the column is written (the
    // golden frames pin the bytes).
    let none = block(&[with(None), with(None)], &cid);
    assert!(none.instances.is_empty());
    let columns = none.flows.unwrap();
    assert!(columns.vantage_ref.is_empty() && columns.vantage_ref_gaps.is_empty());
}

/// A flow as the sensor writes it (shared with the frame tests).
fn common_flow() -> Record {
    let flow = common::sample_records().swap_remove(0);
    assert!(matches!(flow, Record::Flow(_)));
    flow
}
