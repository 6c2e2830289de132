"""`qwen3-tts-server job FILE -o OUT`: send a text or Markdown file to a running server as a
long-audio job, show its progress, and download the result (and, when asked, its subtitles
and chapter list).

    qwen3-tts-server job book.md --voice nova -o book.mp3
    qwen3-tts-server job chapter.txt --voice Ryan -o chapter.wav --subtitles chapter.vtt

The server is QWEN3_TTS_URL (or --url, default http://127.0.0.1:8000) and the key
QWEN3_TTS_API_KEY or OPENAI_API_KEY (or --api-key). The job keeps running on the server if
the command is interrupted; its id is printed first, to fetch the result later.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TextIO

import httpx

DEFAULT_URL = "http://127.0.0.1:8000"
BAR_WIDTH = 30
FORMATS = ("mp3", "opus", "aac", "flac", "wav", "pcm", "ogg")


def parse(args: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qwen3-tts-server job", description=__doc__.split("\n\n")[0])
    parser.add_argument("file", type=Path, help="a .txt or .md file (Markdown headings start chapters)")
    parser.add_argument("-o", "--output", type=Path, required=True, help="where to write the audio")
    parser.add_argument("--voice", required=True)
    parser.add_argument("--format", choices=FORMATS, help="default: the output's extension, else mp3")
    parser.add_argument("--model")
    parser.add_argument("--language")
    parser.add_argument("--instructions")
    parser.add_argument("--speed", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--sample-rate", type=int)
    parser.add_argument("--subtitles", type=Path, help="also write subtitles here (.srt or .vtt)")
    parser.add_argument("--timestamps", action="store_true", help="time every word (the server's aligner slot)")
    parser.add_argument("--chapters", type=Path, help="also write the chapter list here (JSON)")
    parser.add_argument("--url", default=os.environ.get("QWEN3_TTS_URL", DEFAULT_URL))
    parser.add_argument("--api-key", default=os.environ.get("QWEN3_TTS_API_KEY") or os.environ.get("OPENAI_API_KEY"))
    return parser.parse_args(args)


def form_fields(options: argparse.Namespace) -> dict[str, str]:
    suffix = options.output.suffix.lstrip(".").lower()
    fmt = options.format or (suffix if suffix in FORMATS else "mp3")
    fields = {"voice": options.voice, "response_format": fmt}
    for name in ("model", "language", "instructions", "speed", "seed", "sample_rate"):
        value = getattr(options, name)
        if value is not None:
            fields[name] = str(value)
    if options.timestamps:
        fields["timestamps"] = "true"
    return fields


def progress_line(job: dict[str, Any]) -> str:
    progress = job["progress"]
    total = max(progress["segments_total"], 1)
    filled = BAR_WIDTH * progress["segments_done"] // total
    left = progress["estimated_seconds_left"]
    eta = f", about {left:.0f} s left" if left is not None else ""
    return (
        f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {progress['segments_done']}/{progress['segments_total']} "
        f"segments, {progress['audio_seconds']:.1f} s of audio{eta}"
    )


def follow(client: httpx.Client, job_id: str, out: TextIO) -> dict[str, Any]:
    """Show the job's progress events until it ends; returns the final job."""
    event = ""
    with client.stream("GET", f"/v1/audio/jobs/{job_id}/events") as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: "):
                data = json.loads(line.removeprefix("data: "))
                if event == "deleted":
                    raise RuntimeError(f"job {job_id} was deleted")
                out.write("\r" + progress_line(data))
                out.flush()
                if event == "done":
                    out.write("\n")
                    return data  # type: ignore[no-any-return]
    raise RuntimeError("the server closed the event stream before the job ended")


def download(client: httpx.Client, path: str, target: Path) -> int:
    partial = target.with_name(target.name + ".partial")
    size = 0
    with client.stream("GET", path) as response, partial.open("wb") as file:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            file.write(chunk)
            size += len(chunk)
    partial.replace(target)
    return size


def error_message(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text


def main(args: list[str], out: TextIO = sys.stderr) -> int:
    options = parse(args)
    if options.file.suffix.lower() not in (".txt", ".md", ".markdown"):
        print(f"qwen3-tts-server job: {options.file} is not a .txt or .md file", file=out)
        return 2
    headers = {"Authorization": f"Bearer {options.api_key}"} if options.api_key else {}
    with httpx.Client(base_url=options.url, headers=headers, timeout=httpx.Timeout(60.0, read=None)) as client:
        with options.file.open("rb") as text:
            response = client.post(
                "/v1/audio/jobs", data=form_fields(options), files={"file": (options.file.name, text)}
            )
        if response.status_code != 202:
            print(f"qwen3-tts-server job: {response.status_code}: {error_message(response)}", file=out)
            return 2
        job_id = response.json()["id"]
        print(f"job {job_id}", file=out)
        job = follow(client, job_id, out)
        if job["status"] != "succeeded":
            print(f"job {job_id} {job['status']}: {(job.get('error') or {}).get('message')}", file=out)
            return 1
        size = download(client, f"/v1/audio/jobs/{job_id}/content", options.output)
        print(f"wrote {options.output} ({size} bytes)", file=out)
        if options.subtitles is not None:
            fmt = "srt" if options.subtitles.suffix.lower() == ".srt" else "vtt"
            download(client, f"/v1/audio/jobs/{job_id}/subtitles?format={fmt}", options.subtitles)
            print(f"wrote {options.subtitles}", file=out)
        if options.chapters is not None:
            download(client, f"/v1/audio/jobs/{job_id}/chapters", options.chapters)
            print(f"wrote {options.chapters}", file=out)
    return 0
