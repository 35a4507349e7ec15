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
    "no-observer": ("无法监视 inbox/ 的文件事件（{error}）；改为每 {seconds:g} 秒重新扫描一次，"
                    "文件照常读取，只是可能稍晚",
                    "cannot watch inbox/ for file events ({error}); its rescans every "
                    "{seconds:g} s still find every file, perhaps a little later"),
    "hold-advice": ("请检查该文件及所在目录的权限和磁盘空间；其他文件照常处理，"
                    "本文件 {minutes} 分钟后重试",
                    "check the permissions and free space of the file and its folders; "
                    "other files go on, this one is tried again in {minutes} min"),
    # An entry of inbox/ that is not taken (``folder_ignored``), said once while it stays.
    "not-taken": ("inbox/ 中的 {name} 不会被读取：{why}。只读取直接放在 inbox/ 中、"
                  "文件名以 .xml 结尾的文件",
                  "{name} in inbox/ is not taken: {why}. Only files directly in inbox/ "
                  "whose names end in .xml are read"),
    "not-taken-folder": ("这是一个目录，目录中的文件不会被读取；请把文件直接放入 inbox/",
                         "it is a folder, and the files in a folder are not read; put "
                         "the files directly in inbox/"),
    "not-taken-not-xml": ("文件名不以 .xml 结尾；如果这是交换文件，请改名为 *.xml",
                          "its name does not end in .xml; if it is an exchange file, "
                          "rename it to *.xml"),
    "not-taken-link": ("这是符号链接（快捷方式），不会被跟随；请把文件本身放入 inbox/",
                       "it is a symbolic link, which is never followed; put the file "
                       "itself in inbox/"),
    "not-taken-special": ("这不是普通文件（而是管道、套接字或设备）",
                          "it is no regular file (a pipe, a socket or a device)"),
    "not-taken-more": ("inbox/ 中另有 {count} 个条目不会被读取（未逐一列出）。只读取直接放在 "
                       "inbox/ 中、文件名以 .xml 结尾的文件",
                       "{count} more entries in inbox/ are not taken (not listed one by "
                       "one). Only files directly in inbox/ whose names end in .xml are read"),
}


def say(message_id: str, lang: str, **args: object) -> str:
    return said(_TEXT, message_id, lang, **args)
