"""The drop-folder source's log lines, in Chinese (default) and English.

Apart from ``folder`` because they are words, not the flow of a file: the operator of a
front-end machine reads them in the agent's language (``[agent] lang``).
"""

from __future__ import annotations

from schemas.messages import said

__all__ = ["say"]

_TEXT: dict[str, tuple[str, str]] = {
    "resuming": ("继续处理上次留在 processing/ 中的文件", "resuming file"),
    "moved": ("文件已移入 {folder}/", "file moved to {folder}/"),
    "renamed": ("文件名不是 UTF-8 或过长，改名为 {name} 后处理",
                "file name is not UTF-8 or too long; claimed as {name}"),
    "read-error": ("读取文件出错：{error}", "read error: {error}"),
    "reader-failed": ("无法读取该文件：{error}", "cannot read the file: {error}"),
    "held": ("{what}：{path}（{error}）；{advice}", "{what}: {path} ({error}); {advice}"),
    "not-claimed": ("无法移入 processing/，暂留在 inbox/",
                    "cannot be moved into processing/; left in inbox/"),
    "not-finished": ("已入库但无法移出 processing/",
                     "journaled but cannot be moved out of processing/"),
    "hold-advice": ("请检查该文件及所在目录的权限和磁盘空间；其他文件照常处理，"
                    "本文件 {minutes} 分钟后重试",
                    "check the permissions and free space of the file and its folders; "
                    "other files go on, this one is tried again in {minutes} min"),
}


def say(message_id: str, lang: str, **args: object) -> str:
    return said(_TEXT, message_id, lang, **args)
