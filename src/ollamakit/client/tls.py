"""Certificates in words: a small X.509 reader and the explanations of a failed verification.

Design
------
``ssl`` parses a certificate only once it verified, and the point here is to say *why* one did
not, so :func:`parse_certificate` reads the few fields messages need (names, issuer, dates)
from the DER itself. :func:`fetch_certificate` and :func:`speaks_tls` are the only two probes
that open a socket outside httpx; both skip verification on purpose (they only look).
"""

from __future__ import annotations

import ipaddress
import socket
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Unpack

from ollamakit.config import Settings
from ollamakit.errors import Items, TLSVerifyFailed, Where
from ollamakit.i18n import t

CERT_PROBE_TIMEOUT_S: Final = 3.0


@dataclass(frozen=True, slots=True)
class CertificateInfo:
    """What a message needs from a certificate: names, issuer, validity."""

    subject: str  # "CN=x, O=y"
    issuer: str
    not_before: datetime | None
    not_after: datetime | None
    names: tuple[str, ...]  # subjectAltName: DNS names and IP addresses


_NAME_OIDS: Final = {b"\x55\x04\x03": "CN", b"\x55\x04\x0a": "O", b"\x55\x04\x0b": "OU"}
_SAN_OID: Final = b"\x55\x1d\x11"


def _der(data: bytes, pos: int) -> tuple[int, int, int]:
    """One DER element at ``pos``: (tag, start of content, end of content)."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[pos : pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    children = []
    while start < end:
        child = _der(data, start)
        children.append(child)
        start = child[2]
    return children


def _der_string(tag: int, raw: bytes) -> str:
    if tag == 0x1E:  # BMPString
        return raw.decode("utf-16-be", "replace")
    if tag == 0x1C:  # UniversalString
        return raw.decode("utf-32-be", "replace")
    return raw.decode("utf-8", "replace")


def _der_name(data: bytes, start: int, end: int) -> str:
    """``CN=x, O=y`` from a DER Name (only CN, O and OU: what identifies a CA to a person)."""
    parts = []
    for _, set_start, set_end in _der_children(data, start, end):
        for _, seq_start, seq_end in _der_children(data, set_start, set_end):
            (_, oid_start, oid_end), (tag, v_start, v_end) = _der_children(
                data, seq_start, seq_end
            )[:2]
            short = _NAME_OIDS.get(data[oid_start:oid_end])
            if short:
                parts.append(f"{short}={_der_string(tag, data[v_start:v_end])}")
    return ", ".join(parts) or "?"


def _der_time(tag: int, raw: bytes) -> datetime | None:
    text = raw.decode("ascii", "replace").rstrip("Z")
    try:
        if tag == 0x17:  # UTCTime: YYMMDDHHMMSS
            moment = datetime.strptime(text, "%y%m%d%H%M%S")
        else:  # GeneralizedTime: YYYYMMDDHHMMSS
            moment = datetime.strptime(text[:14], "%Y%m%d%H%M%S")
    except ValueError:
        return None
    return moment.replace(tzinfo=UTC)


def parse_certificate(der: bytes) -> CertificateInfo:
    """The parts of a DER certificate that messages name (no verification: only reading).

    ``ssl`` parses a certificate only once it verified, and the point here is to say why one
    did not, so this reads the few fields needed from the DER itself.
    """
    cert_start = _der(der, 0)[1]
    _, tbs_start, tbs_end = _der(der, cert_start)
    fields = _der_children(der, tbs_start, tbs_end)
    if fields[0][0] == 0xA0:  # [0] version
        fields = fields[1:]
    # serialNumber, signature, issuer, validity, subject, subjectPublicKeyInfo, ...
    issuer = _der_name(der, fields[2][1], fields[2][2])
    validity = _der_children(der, fields[3][1], fields[3][2])
    not_before, not_after = (_der_time(tag, der[a:b]) for tag, a, b in validity[:2])
    subject = _der_name(der, fields[4][1], fields[4][2])
    names: list[str] = []
    for tag, start, end in fields[6:]:
        if tag != 0xA3:  # [3] extensions
            continue
        (_, ext_start, ext_end), *_ = _der_children(der, start, end)
        for _, e_start, e_end in _der_children(der, ext_start, ext_end):
            parts = _der_children(der, e_start, e_end)
            if der[parts[0][1] : parts[0][2]] != _SAN_OID:
                continue
            o_start = parts[-1][1]  # extnValue: an OCTET STRING holding GeneralNames
            _, g_start, g_end = _der(der, o_start)
            for g_tag, n_start, n_end in _der_children(der, g_start, g_end):
                value = der[n_start:n_end]
                if g_tag == 0x82:  # dNSName
                    names.append(value.decode("ascii", "replace"))
                elif g_tag == 0x87 and len(value) in (4, 16):  # iPAddress
                    names.append(str(ipaddress.ip_address(value)))
    return CertificateInfo(subject, issuer, not_before, not_after, tuple(names))


def fetch_certificate(host: str, port: int, timeout_s: float) -> CertificateInfo | None:
    """The certificate a TLS server shows, read without verifying it (None if that fails)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            ctx.wrap_socket(sock, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    if not der:
        return None
    try:
        return parse_certificate(der)
    except (ValueError, IndexError):
        return None


def trust_label(settings: Settings | None) -> str:
    """The CAs the client trusts, in words: ``public CAs`` or ``public CAs + ca.pem``."""
    label = t("errors.tls_trust_public")
    if settings is not None and settings.ca_bundle is not None:
        label += f" + {settings.ca_bundle.name}"
    return label


# OpenSSL's X509_V_ERR_* codes that have a plain-words explanation.
_UNTRUSTED_ISSUER: Final = frozenset({2, 19, 20, 21})  # no trusted CA issued it
_SELF_SIGNED: Final = 18
_EXPIRED: Final = 10
_NOT_YET_VALID: Final = 9
_NAME_MISMATCH: Final = frozenset({62, 64})  # host name, IP address


def tls_verify_error(
    exc: ssl.SSLCertVerificationError,
    cert: CertificateInfo | None,
    trust: str,
    **where: Unpack[Where],
) -> TLSVerifyFailed:
    """A :class:`TLSVerifyFailed` that says in words what is wrong with the certificate.

    OpenSSL's reason ("unable to get local issuer certificate") stays, in brackets, for
    searching; the sentence before it names the issuer, the dates or the names instead.
    """
    reason = str(exc.verify_message or exc.reason or exc)
    code = exc.verify_code
    if cert is None:
        return TLSVerifyFailed(reason, reason=reason, trust=trust, **where)
    names = Items(cert.names or (cert.subject,))
    explain: str | None = None
    problem, date = "trust", "?"
    if code in _UNTRUSTED_ISSUER:
        explain = "errors.tls_untrusted_issuer"
    elif code == _SELF_SIGNED:
        explain = "errors.tls_self_signed"
    elif code == _EXPIRED and cert.not_after is not None:
        explain, problem, date = "errors.tls_expired", "date", f"{cert.not_after:%Y-%m-%d}"
    elif code == _NOT_YET_VALID and cert.not_before is not None:
        explain, problem, date = "errors.tls_not_yet_valid", "date", f"{cert.not_before:%Y-%m-%d}"
    elif code in _NAME_MISMATCH:
        explain, problem = "errors.tls_wrong_name", "name"
    return TLSVerifyFailed(
        reason,
        explain=explain,
        problem=problem,
        reason=reason,
        trust=trust,
        subject=cert.subject,
        issuer=cert.issuer,
        date=date,
        names=names,
        **where,
    )


def speaks_tls(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether a TLS handshake succeeds at host:port (certificate not checked: only a probe)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout_s) as sock,
            ctx.wrap_socket(sock, server_hostname=host),
        ):
            return True
    except (OSError, ssl.SSLError):
        return False
