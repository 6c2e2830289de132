"""Long-audio jobs: a book, an article or a dialogue synthesised in the background at batch
speed, kept on disk so that a restart loses nothing.

- inputs.py: a job's body (the speech fields, `input` / `inputs` / speaker-tagged text) cut
  into numbered segments, with chapters and pauses;
- store.py: the embedded SQLite store (WAL) in JOBS_DIR, and each segment's audio as a file;
- runner.py: runs the segments of queued jobs on the engine at background priority,
  several at once, and encodes the result when the last one is done;
- results.py: the result file, subtitles and chapters from the finished segments.
"""
