"""The jobs of the bad-input suite: each a URL trick or a broken file, and the exact outcome it must end with."""

from dataclasses import dataclass

API_KEY = "bad-inputs-key"


# The smallest job: 3 driving frames, one 2-frame tile, one step, no unconditional pass.
PARAMS = {
    "resolution": 128,
    "num_inference_steps": 1,
    "tile_size": 2,
    "tile_overlap": 1,
    "sample_stride": 1,
    "fps": 8,
    "guidance_scale": 1.0,
    "seed": 1,
}


LIMITS = {
    "fetch_allowed_networks": "127.0.0.2/32",
    "fetch_timeout_s": 2,
    "fetch_max_image_bytes": 300_000,
    "fetch_max_video_bytes": 2_000_000,
    "max_image_pixels": 1_000_000,
    "max_video_pixels": 640 * 480,
    "max_video_duration_s": 3,
    "max_decoded_video_bytes": 8 * 2**20,  # 7 frames of 640x480 with their pose and output frames
    "api_keys": API_KEY,
    "http_header_timeout_s": 2,  # test_http_limits waits for it; real clients send their head at once
}


IMAGE = "{inputs}/files/person.png"


VIDEO = "{inputs}/files/drive.mp4"


@dataclass(frozen=True)
class JobCase:
    """A job the gateway accepts and the worker must finish with ``status`` (and ``code``)."""

    id: str
    image_url: str = IMAGE
    video_url: str = VIDEO
    code: str | None = None  # None: the job succeeds
    fragment: str = ""  # part of the message a user acts on

    @property
    def status(self) -> str:
        return "succeeded" if self.code is None else "failed"


def ssrf(
    case_id: str, url: str, code: str = "forbidden_address", fragment: str = "", *, as_video: bool = False
) -> JobCase:
    """A refused address; ``{case}`` in the URL marks the canary path for this case."""
    url = url.replace("{case}", case_id)
    if as_video:
        return JobCase(case_id, video_url=url, code=code, fragment=fragment)
    return JobCase(case_id, image_url=url, code=code, fragment=fragment)


JOB_CASES = [
    # Inputs that work, by the allowed address, a test host name, redirects and a rebinding name.
    JobCase("valid_inputs"),
    JobCase("allowed_name", image_url="http://inputs.example.test:{port}/files/person.png"),
    JobCase("relative_redirects", image_url="{inputs}/redirect?to=/redirect%3Fto%3D/files/person.png"),
    JobCase(
        "dns_rebinding_pinned",
        image_url="http://pinned.rebind.example.test:{port}/files/person.png?case=dns_rebinding_pinned",
    ),
    # Server-side request forgery: loopback, private, link-local, metadata, multicast, unspecified.
    ssrf("loopback_v4", "http://127.0.0.1:{port}/{case}", fragment="loopback"),
    ssrf("loopback_other", "http://127.0.0.3:{port}/{case}", fragment="loopback"),
    ssrf("localhost_name", "http://localhost:{port}/{case}", fragment="loopback"),
    ssrf("loopback_v6", "http://[::1]:{port}/{case}", fragment="loopback"),
    ssrf("mapped_v6_loopback", "http://[::ffff:127.0.0.1]:{port}/{case}", fragment="inside an IPv6 address"),
    ssrf("mapped_v6_hex", "http://[::ffff:7f00:1]:{port}/{case}", fragment="inside an IPv6 address"),
    ssrf("unspecified_v4", "http://0.0.0.0:{port}/{case}", fragment="unspecified"),
    ssrf("unspecified_v6", "http://[::]:{port}/{case}", fragment="unspecified"),
    ssrf("private_10", "http://10.0.0.1/{case}", fragment="private"),
    ssrf("private_172", "http://172.16.5.4/{case}", fragment="private"),
    ssrf("private_192", "http://192.168.0.1:8080/{case}", fragment="private"),
    ssrf("metadata_aws", "http://169.254.169.254/latest/meta-data/{case}", fragment="metadata"),
    ssrf("metadata_aws_v6", "http://[fd00:ec2::254]/{case}", fragment="metadata"),
    ssrf("metadata_alibaba", "http://100.100.100.200/{case}", fragment="carrier-grade NAT"),
    ssrf("link_local_v4", "http://169.254.1.1/{case}", fragment="link-local"),
    ssrf("link_local_v6", "http://[fe80::1]/{case}", fragment="link-local"),
    ssrf("unique_local_v6", "http://[fd12:3456::1]/{case}", fragment="private"),
    ssrf("multicast", "http://224.0.0.1/{case}", fragment="multicast"),
    ssrf("nat64_private", "http://[64:ff9b::a00:1]/{case}", fragment="inside an IPv6 address"),
    ssrf("decimal_ip", "http://2130706433:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("hex_ip", "http://0x7f000001:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("octal_ip", "http://0177.0.0.1:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("short_ip", "http://127.1:{port}/{case}", "unsupported_url", "numeric address"),
    ssrf("name_to_private", "http://private.example.test/{case}", fragment="private"),
    ssrf("name_to_metadata", "http://metadata.example.test/{case}", fragment="metadata"),
    ssrf("name_to_loopback", "http://loopback.example.test:{port}/{case}", fragment="loopback"),
    ssrf("name_to_link_local_v6", "http://linklocal6.example.test/{case}", fragment="link-local"),
    ssrf("name_to_mapped_private", "http://mapped.example.test/{case}", fragment="private"),
    ssrf("name_with_one_private_address", "http://mixed.example.test:{port}/{case}", fragment="192.168.1.10"),
    ssrf("redirect_to_loopback", "{inputs}/redirect?to=http://127.0.0.1:{port}/{case}", fragment="loopback"),
    ssrf("redirect_to_metadata", "{inputs}/redirect?to=http://169.254.169.254/{case}", fragment="metadata"),
    ssrf(
        "redirect_307_to_private_name",
        "{inputs}/redirect?status=307&to=http://private.example.test/{case}",
        fragment="private",
    ),
    ssrf("redirect_to_file_scheme", "{inputs}/redirect?to=file:///etc/passwd", "unsupported_url", "file:"),
    ssrf("redirect_to_gopher", "{inputs}/redirect?to=gopher://127.0.0.1:{port}/{case}", "unsupported_url", "gopher:"),
    ssrf("userinfo_trick", "http://inputs.example.test@127.0.0.1:{port}/{case}", "unsupported_url", "user name"),
    # Unreachable, slow, oversized and truncated downloads.
    JobCase(
        "unknown_host",
        image_url="http://no-such-host.invalid/a.png",
        code="input_unreachable",
        fragment="cannot be resolved",
    ),
    JobCase(
        "closed_port",
        image_url="http://127.0.0.2:{closed_port}/a.png",
        code="input_unreachable",
        fragment="cannot be reached",
    ),
    JobCase("http_404", image_url="{inputs}/status/404", code="input_unreachable", fragment="HTTP 404"),
    JobCase("http_500", video_url="{inputs}/status/500", code="input_unreachable", fragment="HTTP 500"),
    JobCase("redirect_loop", image_url="{inputs}/loop/0", code="input_unreachable", fragment="redirected more than"),
    JobCase("server_never_answers", image_url="{inputs}/hang", code="input_unreachable", fragment="in time"),
    JobCase(
        "server_drips",
        video_url="{inputs}/drip",
        code="input_unreachable",
        fragment="did not finish downloading within 2 s",
    ),
    JobCase("endless_body", video_url="{inputs}/endless", code="input_too_large", fragment="2,000,000-byte"),
    JobCase("declared_terabyte", image_url="{inputs}/declared-huge", code="input_too_large", fragment="300,000-byte"),
    JobCase(
        "image_over_byte_cap", image_url="{inputs}/files/noise.png", code="input_too_large", fragment="300,000-byte"
    ),
    JobCase("cut_short_download", image_url="{inputs}/cut-short", code="input_unreachable", fragment="broke off"),
    # Files that are not what they claim.
    JobCase("garbage_image", image_url="{inputs}/files/garbage.png", code="input_not_image"),
    JobCase("empty_image", image_url="{inputs}/files/empty.png", code="input_not_image", fragment="empty"),
    JobCase("truncated_image", image_url="{inputs}/files/truncated.png", code="input_not_image", fragment="truncated"),
    JobCase(
        "html_as_image", image_url="{inputs}/files/page.html", code="input_not_image", fragment="not a supported image"
    ),
    JobCase("video_as_image", image_url=VIDEO, code="input_not_image"),
    JobCase("pixel_bomb_image", image_url="{inputs}/files/bomb.png", code="input_too_large", fragment="pixels"),
    JobCase("image_as_video", video_url=IMAGE, code="input_not_video"),
    JobCase("garbage_video", video_url="{inputs}/files/garbage.mp4", code="input_not_video"),
    JobCase("empty_video", video_url="{inputs}/files/empty.mp4", code="input_not_video", fragment="empty"),
    JobCase(
        "zero_frame_video", video_url="{inputs}/files/zero_frames.avi", code="input_not_video", fragment="zero frames"
    ),
    JobCase("truncated_video_without_index", video_url="{inputs}/files/truncated.mp4", code="input_not_video"),
    JobCase("audio_only", video_url="{inputs}/files/audio.wav", code="input_not_video", fragment="only audio"),
    JobCase("video_too_long", video_url="{inputs}/files/long.mp4", code="input_too_large", fragment="limit of 3 s"),
    JobCase("video_frames_too_large", video_url="{inputs}/files/wide.mp4", code="input_too_large", fragment="704x512"),
    JobCase(
        "decoded_size_bomb_by_header",
        video_url="{inputs}/files/bomb_by_header.mp4",
        code="input_too_large",
        # 640x480x3 per frame, and the job's pose and output frames (192x128x3 each) beside it
        fragment="gives 60 frames of 640x480 at a frame stride of 1, 61 MiB decoded with what the job holds for each, "
        "more than the limit of 8 MiB",
    ),
    JobCase(
        "decoded_size_bomb_without_count",
        video_url="{inputs}/files/bomb_without_count.h264",
        code="input_too_large",
        fragment="gives at least 8 frames of 640x480",
    ),
    # Image modes (issue 19): 16-bit grey once turned all white and failed as no_person_detected.
    JobCase("person_in_16_bit_grey", image_url="{inputs}/files/person_grey16.png"),
    JobCase("person_in_palette_png", image_url="{inputs}/files/person_palette.png"),
    JobCase("person_in_cmyk_jpeg", image_url="{inputs}/files/person_cmyk.jpg"),
    JobCase(
        "float_image", image_url="{inputs}/files/person_float.tiff", code="input_not_image", fragment="pixel mode 'F'"
    ),
    # Valid media without a person.
    JobCase("no_person_in_image", image_url="{inputs}/files/flat.png", code="no_person_detected"),
]
