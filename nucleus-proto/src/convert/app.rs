//! Application records (DNS, HTTP, TLS, QUIC, SSH) and the flow they
//! belong to, both ways. Each wire message starts with the same three
//! fields (time delta, flow, seq) and then the protocol's own.

use super::compact::{ip_bytes, ip_from, narrow, uid_fields, uid_from_fields};
use super::{ConvertError, Decoder, Encoder, Tuple};
use crate::dns_names::{opcode, rcode, rtype};
use crate::{
    AppRecord, Certificate, DnsAnswer, DnsRecord, FlowRef, HttpRecord, Proto, QuicRecord,
    SshRecord, TlsAlert, TlsRecord, pb,
};

fn encode_flow_ref(e: &Encoder, f: &FlowRef) -> pb::FlowRef {
    let (uid_packed, uid_text) = uid_fields(&f.uid);
    let tuple = Tuple {
        proto: f.proto.0,
        src: f.src_ip,
        src_port: f.src_port,
        dst: f.dst_ip,
        dst_port: f.dst_port,
    };
    pb::FlowRef {
        uid_packed,
        uid_text,
        community_id: e.community_id(&f.community_id, &tuple),
        proto: u32::from(f.proto.0),
        src_ip: ip_bytes(f.src_ip),
        src_port: u32::from(f.src_port),
        dst_ip: ip_bytes(f.dst_ip),
        dst_port: u32::from(f.dst_port),
    }
}

fn decode_flow_ref(d: &Decoder, w: Option<pb::FlowRef>) -> Result<FlowRef, ConvertError> {
    let w = w.ok_or(ConvertError::Missing("flow"))?;
    let tuple = Tuple {
        proto: narrow("proto", w.proto)?,
        src: ip_from("src_ip", &w.src_ip)?,
        src_port: narrow("src_port", w.src_port)?,
        dst: ip_from("dst_ip", &w.dst_ip)?,
        dst_port: narrow("dst_port", w.dst_port)?,
    };
    Ok(FlowRef {
        uid: uid_from_fields(&w.uid_packed, w.uid_text)?,
        community_id: d.community_id(w.community_id, &tuple),
        proto: Proto(tuple.proto),
        src_ip: tuple.src,
        src_port: tuple.src_port,
        dst_ip: tuple.dst,
        dst_port: tuple.dst_port,
    })
}

/// The three leading fields of every application message.
type Head = (i64, Option<pb::FlowRef>, u64);

fn head<T>(e: &mut Encoder, a: &AppRecord<T>) -> Head {
    (e.ts_delta(a.ts), Some(encode_flow_ref(e, &a.flow)), a.seq)
}

fn app<T>(
    d: &mut Decoder,
    (delta, flow, seq): Head,
    body: T,
) -> Result<AppRecord<T>, ConvertError> {
    let ts = d.ts(delta);
    Ok(AppRecord {
        ts,
        flow: decode_flow_ref(d, flow)?,
        seq,
        body,
    })
}

pub(super) fn encode_dns(e: &mut Encoder, a: &AppRecord<DnsRecord>) -> pb::Dns {
    let (ts_delta_us, flow, seq) = head(e, a);
    let b = &a.body;
    pb::Dns {
        ts_delta_us,
        flow,
        seq,
        trans_id: u32::from(b.trans_id),
        rtt: b.rtt,
        query: b.query.clone(),
        qclass: b.qclass.map(u32::from),
        qtype: b.qtype.map(|m| u32::from(m.value())),
        opcode: u32::from(b.opcode.value()),
        rcode: b.rcode.map(|m| u32::from(m.value())),
        aa: b.aa,
        tc: b.tc,
        rd: b.rd,
        ra: b.ra,
        answers: b.answers.iter().map(pb::DnsAnswer::from).collect(),
        unanswered: b.unanswered,
        unsolicited: b.unsolicited,
    }
}

pub(super) fn decode_dns(
    d: &mut Decoder,
    w: pb::Dns,
) -> Result<AppRecord<DnsRecord>, ConvertError> {
    let body = DnsRecord {
        trans_id: narrow("trans_id", w.trans_id)?,
        rtt: w.rtt,
        query: w.query,
        qclass: w.qclass.map(|v| narrow("qclass", v)).transpose()?,
        qtype: w.qtype.map(|v| narrow("qtype", v).map(rtype)).transpose()?,
        opcode: opcode(narrow("opcode", w.opcode)?),
        rcode: w.rcode.map(|v| narrow("rcode", v).map(rcode)).transpose()?,
        aa: w.aa,
        tc: w.tc,
        rd: w.rd,
        ra: w.ra,
        answers: w
            .answers
            .into_iter()
            .map(DnsAnswer::try_from)
            .collect::<Result<_, _>>()?,
        unanswered: w.unanswered,
        unsolicited: w.unsolicited,
    };
    app(d, (w.ts_delta_us, w.flow, w.seq), body)
}

impl From<&DnsAnswer> for pb::DnsAnswer {
    fn from(a: &DnsAnswer) -> Self {
        pb::DnsAnswer {
            name: a.name.clone(),
            r#type: u32::from(a.rtype.value()),
            ttl: a.ttl,
            data: a.data.clone(),
        }
    }
}

impl TryFrom<pb::DnsAnswer> for DnsAnswer {
    type Error = ConvertError;

    fn try_from(w: pb::DnsAnswer) -> Result<Self, ConvertError> {
        Ok(DnsAnswer {
            name: w.name,
            rtype: rtype(narrow("answer type", w.r#type)?),
            ttl: w.ttl,
            data: w.data,
        })
    }
}

pub(super) fn encode_http(e: &mut Encoder, a: &AppRecord<HttpRecord>) -> pb::Http {
    let (ts_delta_us, flow, seq) = head(e, a);
    let b = a.body.clone();
    pb::Http {
        ts_delta_us,
        flow,
        seq,
        trans_depth: b.trans_depth,
        method: b.method,
        host: b.host,
        uri: b.uri,
        version: b.version,
        user_agent: b.user_agent,
        status_code: b.status_code.map(u32::from),
        status_msg: b.status_msg,
        request_body_len: b.request_body_len,
        response_body_len: b.response_body_len,
        content_type: b.content_type,
        info_code: b.info_code.map(u32::from),
    }
}

pub(super) fn decode_http(
    d: &mut Decoder,
    w: pb::Http,
) -> Result<AppRecord<HttpRecord>, ConvertError> {
    let body = HttpRecord {
        trans_depth: w.trans_depth,
        method: w.method,
        host: w.host,
        uri: w.uri,
        version: w.version,
        user_agent: w.user_agent,
        status_code: w
            .status_code
            .map(|v| narrow("status_code", v))
            .transpose()?,
        status_msg: w.status_msg,
        request_body_len: w.request_body_len,
        response_body_len: w.response_body_len,
        content_type: w.content_type,
        info_code: w.info_code.map(|v| narrow("info_code", v)).transpose()?,
    };
    app(d, (w.ts_delta_us, w.flow, w.seq), body)
}

pub(super) fn encode_tls(e: &mut Encoder, a: &AppRecord<TlsRecord>) -> pb::Tls {
    let (ts_delta_us, flow, seq) = head(e, a);
    let b = a.body.clone();
    pb::Tls {
        ts_delta_us,
        flow,
        seq,
        version: b.version,
        sni: b.sni,
        alpn: b.alpn,
        alpn_selected: b.alpn_selected,
        cipher: b.cipher,
        ja3: b.ja3,
        ja3_string: b.ja3_string,
        ja3s: b.ja3s,
        ja3s_string: b.ja3s_string,
        ja4: b.ja4,
        resumed: b.resumed,
        certs: b.certs.into_iter().map(pb::Certificate::from).collect(),
        established: b.established,
        hello_retry_request: b.hello_retry_request,
        hello_retry_ja3s: b.hello_retry_ja3s,
        first_hello_ja3: b.first_hello_ja3,
        ech: b.ech,
        client_version: b.client_version,
        alerts: b
            .alerts
            .into_iter()
            .map(|t| pb::TlsAlert {
                from: t.from,
                level: t.level,
                description: t.description,
            })
            .collect(),
        alerts_total: b.alerts_total,
        last_alert: b.last_alert,
    }
}

pub(super) fn decode_tls(
    d: &mut Decoder,
    w: pb::Tls,
) -> Result<AppRecord<TlsRecord>, ConvertError> {
    let body = TlsRecord {
        version: w.version,
        sni: w.sni,
        alpn: w.alpn,
        alpn_selected: w.alpn_selected,
        cipher: w.cipher,
        ja3: w.ja3,
        ja3_string: w.ja3_string,
        ja3s: w.ja3s,
        ja3s_string: w.ja3s_string,
        ja4: w.ja4,
        resumed: w.resumed,
        certs: w.certs.into_iter().map(Certificate::from).collect(),
        established: w.established,
        hello_retry_request: w.hello_retry_request,
        hello_retry_ja3s: w.hello_retry_ja3s,
        first_hello_ja3: w.first_hello_ja3,
        ech: w.ech,
        client_version: w.client_version,
        alerts: w
            .alerts
            .into_iter()
            .map(|t| TlsAlert {
                from: t.from,
                level: t.level,
                description: t.description,
            })
            .collect(),
        alerts_total: w.alerts_total,
        last_alert: w.last_alert,
    };
    app(d, (w.ts_delta_us, w.flow, w.seq), body)
}

impl From<Certificate> for pb::Certificate {
    fn from(c: Certificate) -> Self {
        pb::Certificate {
            subject: c.subject,
            issuer: c.issuer,
            san_dns: c.san_dns,
            san_ip: c.san_ip,
            serial: c.serial,
            not_before: c.not_before,
            not_after: c.not_after,
            key_type: c.key_type,
            key_bits: c.key_bits,
            sha256: c.sha256,
        }
    }
}

impl From<pb::Certificate> for Certificate {
    fn from(c: pb::Certificate) -> Self {
        Certificate {
            subject: c.subject,
            issuer: c.issuer,
            san_dns: c.san_dns,
            san_ip: c.san_ip,
            serial: c.serial,
            not_before: c.not_before,
            not_after: c.not_after,
            key_type: c.key_type,
            key_bits: c.key_bits,
            sha256: c.sha256,
        }
    }
}

pub(super) fn encode_quic(e: &mut Encoder, a: &AppRecord<QuicRecord>) -> pb::Quic {
    let (ts_delta_us, flow, seq) = head(e, a);
    let b = a.body.clone();
    pb::Quic {
        ts_delta_us,
        flow,
        seq,
        version: b.version,
        sni: b.sni,
        alpn: b.alpn,
        ja3: b.ja3,
        ja4: b.ja4,
        dcid: b.dcid,
        scid: b.scid,
    }
}

pub(super) fn decode_quic(
    d: &mut Decoder,
    w: pb::Quic,
) -> Result<AppRecord<QuicRecord>, ConvertError> {
    let body = QuicRecord {
        version: w.version,
        sni: w.sni,
        alpn: w.alpn,
        ja3: w.ja3,
        ja4: w.ja4,
        dcid: w.dcid,
        scid: w.scid,
    };
    app(d, (w.ts_delta_us, w.flow, w.seq), body)
}

pub(super) fn encode_ssh(e: &mut Encoder, a: &AppRecord<SshRecord>) -> pb::Ssh {
    let (ts_delta_us, flow, seq) = head(e, a);
    let b = a.body.clone();
    pb::Ssh {
        ts_delta_us,
        flow,
        seq,
        client_banner: b.client_banner,
        server_banner: b.server_banner,
        hassh: b.hassh,
        hassh_server: b.hassh_server,
        kex: b.kex,
        cipher: b.cipher,
        mac: b.mac,
        version: b.version.map(u32::from),
        hassh_string: b.hassh_string,
        hassh_server_string: b.hassh_server_string,
        host_key_alg: b.host_key_alg,
        compression: b.compression,
    }
}

pub(super) fn decode_ssh(
    d: &mut Decoder,
    w: pb::Ssh,
) -> Result<AppRecord<SshRecord>, ConvertError> {
    let body = SshRecord {
        client_banner: w.client_banner,
        server_banner: w.server_banner,
        hassh: w.hassh,
        hassh_server: w.hassh_server,
        kex: w.kex,
        cipher: w.cipher,
        mac: w.mac,
        version: w.version.map(|v| narrow("ssh version", v)).transpose()?,
        hassh_string: w.hassh_string,
        hassh_server_string: w.hassh_server_string,
        host_key_alg: w.host_key_alg,
        compression: w.compression,
    };
    app(d, (w.ts_delta_us, w.flow, w.seq), body)
}
