"""Movies of a run: GIF through Pillow (always available), MP4 through imageio-ffmpeg.

Frames are read one record at a time from the file, so memory stays flat however long the run.
GIF frames are rendered with :meth:`FrameRenderer.render_rgba` (static parts drawn once) and
handed to Pillow one by one as palette images; MP4 frames go through matplotlib's ffmpeg writer.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import UsageError
from .frames import FrameRenderer, _open


def _ffmpeg_path() -> str:
    try:
        import imageio_ffmpeg
    except ImportError:
        raise UsageError(
            "MP4 movies need an ffmpeg executable, which tmesim takes from the Python package "
            "imageio-ffmpeg\n  fix: pip install 'tmesim[movie]' (or imageio-ffmpeg), or write a "
            ".gif instead"
        ) from None
    return imageio_ffmpeg.get_ffmpeg_exe()


def animate(
    source,
    output,
    *,
    field: str | None = None,
    fps: int = 10,
    every: int = 1,
    projection=False,
    dpi=100,
    progress=None,
    **look,
) -> Path:
    """Write a movie of every ``every``-th record to ``output`` (``.gif`` or ``.mp4``).

    Returns the output path. ``progress(i, n)`` is called after each frame if given. ``look``
    takes the keyword options of :class:`FrameRenderer` (``z``, ``vmin``, ``vmax``, ``log``,
    ``cmap``, ``cells``, ``color_by``, ``kinds``); colour limits hold for the whole movie.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib import animation

    output = Path(output)
    suffix = output.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise UsageError(
            f"cannot write a movie to {output}: unknown format {suffix or '(none)'}\n"
            "  fix: end the output name in .gif or .mp4"
        )
    if every < 1 or fps < 1:
        raise UsageError("--every and --fps must be positive whole numbers\n  fix: e.g. --fps 10")
    if suffix == ".mp4":
        matplotlib.rcParams["animation.ffmpeg_path"] = _ffmpeg_path()
        writer = animation.FFMpegWriter(
            fps=fps, codec="libx264", extra_args=["-pix_fmt", "yuv420p"]
        )
    res, owned = _open(source)
    try:
        if res.n_records == 0:
            raise UsageError(f"{res.path} holds no complete record\n  fix: run the scenario first")
        records = list(range(0, res.n_records, every))
        renderer = FrameRenderer(res, field, projection=projection, dpi=dpi, **look)
        try:
            if suffix == ".gif":
                _write_gif(renderer, records, output, fps, progress)
            else:
                with writer.saving(renderer.fig, str(output), dpi=dpi):
                    for i, rec in enumerate(records):
                        renderer.update(rec)
                        writer.grab_frame()
                        if progress is not None:
                            progress(i + 1, len(records))
        finally:
            renderer.close()
    finally:
        if owned:
            res.close()
    return output


def _write_gif(renderer, records, output, fps, progress) -> None:
    """Stream frames into Pillow's GIF writer (it keeps one palette image per frame)."""
    from PIL import Image

    def frames():
        for i, rec in enumerate(records):
            rgb = renderer.render_rgba(rec)[..., :3]
            # RGB -> 256-colour palette per frame (fast octree: ~10x faster than median cut)
            yield Image.fromarray(rgb).quantize(256, method=Image.Quantize.FASTOCTREE)
            if progress is not None:
                progress(i + 1, len(records))

    it = frames()
    first = next(it)
    first.save(output, save_all=True, append_images=it, duration=int(1000 / fps), loop=0)
