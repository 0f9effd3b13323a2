"""GGUF: hand-built v3 files; header lies and chat-template injection are reported."""

from __future__ import annotations

import struct

import pytest

from mlwarden.scan.base import Limits
from mlwarden.scan.formats.gguf import scan_gguf, template_risks

from .conftest import kinds

U32, F32, STRING, ARRAY = 4, 6, 8, 9

LLAMA3 = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
    "+ message['content'] | trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}"
    "{% set content = bos_token + content %}{% endif %}{{ content }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"
)
CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}"
)
# Tool-calling templates (Llama 3.1, Qwen 2.5) use namespace(), tojson and raise_exception.
TOOLS = (
    "{%- set ns = namespace(found=false) -%}{%- for m in messages -%}"
    "{%- if m.role not in ['user', 'assistant', 'system', 'tool'] -%}"
    "{{ raise_exception('bad role') }}{%- endif -%}{%- if m.role == 'system' -%}"
    "{%- set ns.found = true -%}{%- endif -%}{{ '<|im_start|>' ~ m.role ~ '\n' ~ m.content }}"
    "{%- if m.tool_calls is defined -%}{{ m.tool_calls | tojson }}{%- endif -%}"
    "{%- if loop.last and m.role == 'assistant' -%}{% break %}{%- endif -%}{%- endfor -%}"
    "{% generation %}{{ 'x' }}{% endgeneration %}"
)
SSTI_SUBCLASSES = "{{ ''.__class__.__mro__[1].__subclasses__() }}"
SSTI_CYCLER = "{{ cycler.__init__.__globals__.os.popen('id').read() }}"


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def kv(key: str, vtype: int, payload: bytes) -> bytes:
    return gstr(key) + struct.pack("<I", vtype) + payload


def template_kv(source: str, key: str = "tokenizer.chat_template") -> bytes:
    return kv(key, STRING, gstr(source))


def build(kvs=(), tensors=(), data=b"", *, n_kv=None, n_tensors=None, alignment=32, version=3) -> bytes:
    out = b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                len(kvs) if n_kv is None else n_kv)
    out += b"".join(kvs)
    for name, dims, ggml_type, offset in tensors:
        out += gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        out += struct.pack("<IQ", ggml_type, offset)
    out += b"\x00" * (-len(out) % alignment)
    return out + data


def base_kvs() -> list[bytes]:
    tokens = struct.pack("<IQ", STRING, 3) + gstr("a") + gstr("b") + gstr("<|eot_id|>")
    inner = struct.pack("<IQ", U32, 2) + bytes(8) + struct.pack("<IQ", U32, 1) + bytes(4)
    nested = struct.pack("<IQ", ARRAY, 2) + inner
    return [
        kv("general.architecture", STRING, gstr("llama")),
        kv("general.alignment", U32, struct.pack("<I", 32)),
        kv("llama.rope.freq_base", F32, struct.pack("<f", 10000.0)),
        kv("tokenizer.ggml.tokens", ARRAY, tokens),
        kv("test.nested", ARRAY, nested),
    ]


def tensors() -> list[tuple]:
    return [("tok_embd.weight", [4, 2], 0, 0), ("q.weight", [32], 8, 32)]  # F32 32 bytes, Q8_0 34 bytes


@pytest.mark.parametrize("template", [LLAMA3, CHATML, TOOLS])
def test_benign_files_with_real_templates_are_clean(scan, template):
    data = build([*base_kvs(), template_kv(template)], tensors(), bytes(66))
    assert scan(scan_gguf, data) == []


@pytest.mark.parametrize("payload", [SSTI_SUBCLASSES, SSTI_CYCLER])
def test_published_ssti_payloads_are_critical(scan, payload):
    data = build([*base_kvs(), template_kv(LLAMA3 + payload)], tensors(), bytes(66))
    issues = scan(scan_gguf, data)
    inj = [i for i in issues if i.kind == "gguf.template_injection"]
    assert len(inj) == 1 and inj[0].severity.value == "critical"
    assert inj[0].detail["key"] == "tokenizer.chat_template"


def test_named_template_variants_are_checked(scan):
    data = build([*base_kvs(), template_kv(SSTI_CYCLER, "tokenizer.chat_template.tool_use")], tensors(), bytes(66))
    issues = scan(scan_gguf, data)
    assert any(i.kind == "gguf.template_injection" and i.detail["key"].endswith("tool_use") for i in issues)


@pytest.mark.parametrize(
    ("source", "severity"),
    [
        ("{{ x|attr('_' ~ '_class__') }}", "critical"),
        ("{{ x|attr('__ssalc__'|reverse) }}", "critical"),
        ("{{ x['__globals__'] }}", "critical"),
        ("{{ x|attr(name) }}", "high"),
        ("{{ lipsum }}", "high"),
        ("{{ self._TemplateReference__context }}", "high"),
        ("{% include 'other.j2' %}", "high"),
        ("{{ x.popen }}", "high"),
    ],
)
def test_obfuscated_and_suspicious_templates(source, severity):
    risks = template_risks(source)
    assert risks and risks[0][0].value == severity


def test_unparseable_template_is_medium(scan):
    issues = scan(scan_gguf, build([template_kv("{% if %}")]))
    assert [(i.kind, i.severity.value) for i in issues] == [("gguf.template_unparseable", "medium")]


def test_truncated_header(scan):
    issues = scan(scan_gguf, b"GGUF\x03\x00\x00\x00\x01")
    assert [i.kind for i in issues] == ["gguf.parse_error"]


def test_not_gguf(scan):
    assert [i.kind for i in scan(scan_gguf, b"PK\x03\x04" + bytes(40))] == ["gguf.parse_error"]


def test_absurd_kv_count_is_rejected_without_looping(scan):
    issues = scan(scan_gguf, build(base_kvs(), n_kv=2**60))
    assert [i.kind for i in issues] == ["gguf.parse_error"]
    assert "cannot fit" in issues[0].message


def test_string_length_beyond_file(scan):
    lying = gstr("general.name") + struct.pack("<IQ", STRING, 2**40) + b"abc"
    issues = scan(scan_gguf, build([lying]))
    assert [i.kind for i in issues] == ["gguf.parse_error"]
    assert "past the end" in issues[0].message


def test_string_over_limit_is_skipped_not_read(scan):
    big = "x" * 5000
    issues = scan(scan_gguf, build([template_kv(big), kv("general.name", STRING, gstr("ok"))]),
                  limits=Limits(max_header_bytes=1000))
    assert {"gguf.string_too_long", "gguf.template_unreadable"} <= kinds(issues)
    assert "gguf.parse_error" not in kinds(issues)  # parsing went on past the skipped string


def test_tensor_out_of_range_and_misaligned(scan):
    table = [("a", [8], 0, 0), ("b", [8], 0, 16), ("c", [1024], 0, 64)]
    issues = scan(scan_gguf, build(base_kvs(), table, bytes(96)))
    found = {i.kind: i.severity.value for i in issues}
    assert found["gguf.tensor_out_of_range"] == "high"
    assert found["gguf.tensor_misaligned"] == "medium"
    assert found["gguf.tensor_overlap"] == "high"  # a [0,32) and b [16,48)


def test_invalid_tensor_entries(scan):
    table = [("five_dims", [1, 1, 1, 1, 1], 0, 0), ("bad_type", [4], 99, 0), ("bad_block", [31], 8, 0)]
    issues = scan(scan_gguf, build(base_kvs(), table, bytes(64)))
    assert sum(i.kind == "gguf.tensor_invalid" for i in issues) == 3


def test_duplicate_key_and_bad_alignment(scan):
    kvs = [kv("general.alignment", U32, struct.pack("<I", 24)), kv("general.alignment", U32, struct.pack("<I", 24))]
    issues = scan(scan_gguf, build(kvs))
    assert {"gguf.duplicate_key", "gguf.alignment_invalid"} <= kinds(issues)


def test_big_endian_file_is_read(scan):
    data = b"GGUF" + struct.pack(">IQQ", 3, 0, 1) + struct.pack(">Q", 23) + b"tokenizer.chat_template"
    data += struct.pack(">IQ", STRING, len(SSTI_SUBCLASSES)) + SSTI_SUBCLASSES.encode()
    assert "gguf.template_injection" in kinds(scan(scan_gguf, data))


def test_unsupported_version(scan):
    assert [i.kind for i in scan(scan_gguf, build(version=1))] == ["gguf.parse_error"]
