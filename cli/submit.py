"""``mimicmotion submit``: send a job to a running gateway, optionally wait with a progress bar and download.

Exit status: 0 when the job succeeded (or was only submitted), 1 when it failed or was canceled,
2 when the gateway refused the request or could not be reached.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from tqdm import tqdm

from cli.local_inputs import is_local_file, is_loopback_url, serve_files
from cli.params import job_params_from_args

TERMINAL = {"succeeded", "failed", "canceled"}


class SubmitError(Exception):
    """The gateway refused a request or could not be reached; the message is for the user."""


def submit_command(args: argparse.Namespace) -> int:
    local = [value for value in (args.image, args.video) if is_local_file(value)]
    if not local:
        return _submit(args)
    if not args.wait or not is_loopback_url(args.url):
        print(
            "mimicmotion: error: local files can only be sent to a gateway on this machine, with --wait "
            "(they are served from 127.0.0.1 while the job runs); otherwise pass http(s) URLs",
            file=sys.stderr,
        )
        return 2
    paths = [Path(value) for value in (args.image, args.video)]
    with serve_files([path for path in paths if path.is_file()]) as urls:
        served = iter(urls)
        if is_local_file(args.image):
            args.image = next(served)
        if is_local_file(args.video):
            args.video = next(served)
        return _submit(args)


def _submit(args: argparse.Namespace) -> int:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        with httpx.Client(base_url=args.url, headers=headers, timeout=30.0, trust_env=False) as client:
            job = _create(client, args)
            print(f"job {job['id']} {job['status']}", file=sys.stderr)
            if not args.wait:
                print(json.dumps(job, indent=2))
                return 0
            job = _wait(client, job["id"], poll_s=args.poll_s, timeout_s=args.timeout_s)
            if job["status"] != "succeeded":
                error = job.get("error") or {"code": job["status"], "message": f"the job was {job['status']}"}
                print(
                    f"mimicmotion: job {job['id']} {job['status']} [{error['code']}]: {error['message']}",
                    file=sys.stderr,
                )
                return 1
            if args.out is not None:
                _download(job["output"]["video_url"], args.out)
    except SubmitError as exc:
        print(f"mimicmotion: error: {exc}", file=sys.stderr)
        return 2
    output = job["output"]
    print(
        f"job {job['id']} succeeded: {output['num_frames']} frames at {output['width']}x{output['height']}, "
        f"seed {job['params']['seed']}" + (f" -> {args.out}" if args.out else f"\n{output['video_url']}")
    )
    return 0


def _create(client: httpx.Client, args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {"image_url": args.image, "video_url": args.video}
    params = job_params_from_args(args).model_dump(exclude_unset=True)
    if params:
        body["params"] = params
    return _json(_request(client, "POST", "/jobs", json=body))


def _wait(client: httpx.Client, job_id: str, *, poll_s: float, timeout_s: float | None) -> dict[str, Any]:
    """Poll the job until it finishes, drawing its progress (fraction of the whole job, stage name)."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    with tqdm(total=100, unit="%", bar_format="{desc:<12} {bar} {n:.0f}% [{elapsed}]", disable=None) as bar:
        while True:
            job = _json(_request(client, "GET", f"/jobs/{job_id}"))
            progress = job.get("progress") or {}
            bar.set_description_str(progress.get("stage") or job["status"])
            bar.update(round(100 * progress.get("fraction", 0.0)) - bar.n)
            if job["status"] in TERMINAL:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise SubmitError(f"job {job_id} still {job['status']} after {timeout_s:g} s (it keeps running)")
            time.sleep(poll_s)  # a client polling at a fixed interval, as the API expects


def _download(url: str, out: Path) -> None:
    """Fetch the result without our API key: presigned URLs carry their own signature."""
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".part")
    try:
        with httpx.stream("GET", url, timeout=60.0, trust_env=False) as response:
            if response.status_code != 200:
                raise SubmitError(f"downloading the result answered HTTP {response.status_code}")
            with partial.open("wb") as file:
                for chunk in response.iter_bytes():
                    file.write(chunk)
        partial.replace(out)
    except httpx.HTTPError as exc:
        raise SubmitError(f"downloading the result failed: {exc}") from exc
    finally:
        partial.unlink(missing_ok=True)


def _request(client: httpx.Client, method: str, path: str, **kwargs: Any) -> httpx.Response:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        raise SubmitError(f"cannot reach the gateway at {client.base_url}: {exc}") from exc
    if response.status_code >= 400:
        try:
            error = response.json()["error"]
            detail = f"[{error['code']}] {error['message']}"
        except (ValueError, KeyError, TypeError):
            detail = response.text[:200]
        raise SubmitError(f"{method} {path} answered HTTP {response.status_code}: {detail}")
    return response


def _json(response: httpx.Response) -> dict[str, Any]:
    body = response.json()
    if not isinstance(body, dict):
        raise SubmitError(f"unexpected answer from the gateway: {str(body)[:200]}")
    return body
