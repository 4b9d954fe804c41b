"""carbon.conf → read-only settings for one daemon role and instance.

The file is read with carbon's ConfigParser dialect (see :mod:`cadent.compat.carbon_ini`):
case-insensitive keys, full-line ``#``/``;`` comments only, ``%%`` for ``%``, duplicate
sections and keys refused. A role reads ``[<role>]`` and then overlays ``[<role>:<instance>]``
(instance ``a`` by default); ``[DEFAULT]`` keys apply under any section that is read.

Paths are derived the way carbon derives them:

* GRAPHITE_ROOT = ``$GRAPHITE_ROOT``, else ``/opt/graphite`` (carbon's prefix when installed
  from source; never where cadent's code lives, so that data outlives the installation);
* CONF_DIR = the directory of the config file (no file: ``$GRAPHITE_CONF_DIR``, else
  GRAPHITE_ROOT/conf); STORAGE_DIR = ``$GRAPHITE_STORAGE_DIR``, else GRAPHITE_ROOT/storage; a
  value in the file wins over both;
* after ``[<role>]`` is read, unset PID_DIR = STORAGE_DIR, LOG_DIR = STORAGE_DIR/log/<program>,
  LOCAL_DATA_DIR = STORAGE_DIR/whisper, WHITELISTS_DIR = STORAGE_DIR/lists — so, as in carbon,
  a STORAGE_DIR set only in ``[<role>:<instance>]`` does not move them;
* then ``<program>-<instance>`` is appended to LOG_DIR and the pidfile is
  PID_DIR/<program>-<instance>.pid, where program is ``cadent-<role>``.

A section that names no role (``[cahce]``) is a warning naming the closest known section; when
that is the section of the role being started and the file has no such section, the daemon
would silently run on defaults, so it is a :class:`ConfigError`.
"""

from __future__ import annotations

import difflib
import logging
import os
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Any

from cadent.compat import settings as registry
from cadent.compat.carbon_ini import IniSection, read_ini
from cadent.compat.errors import ConfigError

log = logging.getLogger(__name__)

DEFAULT_INSTANCE = "a"
DEFAULT_SECTION = "DEFAULT"
DEFAULT_GRAPHITE_ROOT = "/opt/graphite"

# Lower-case override keys naming final paths, as carbon's command-line options do.
PATH_OVERRIDES = ("pidfile", "logdir", "whitelist", "blacklist",
                  "relay-rules", "aggregation-rules", "rewrite-rules")

_OVERRIDES_NAME = "<overrides>"


class CarbonSettings(Mapping[str, Any]):
    """Read-only settings of one role: ``s.MAX_QUEUE_SIZE``, ``s["MAX_QUEUE_SIZE"]``, ``s.get()``.

    Lists are stored as tuples. Besides carbon's names it carries ``path`` (the config file or
    None), ``role``, ``instance``, ``program``, ``pidfile``, ``log_dir``, ``graphite_root`` and
    the resolved file paths ``whitelist``, ``blacklist``, ``relay_rules``,
    ``aggregation_rules``, ``rewrite_rules``, and ``lines``: the file line each setting read
    from the file came from (for error messages).
    """

    __slots__ = ("_values", "path", "role", "instance", "program", "pidfile", "log_dir",
                 "graphite_root", "whitelist", "blacklist", "relay_rules",
                 "aggregation_rules", "rewrite_rules", "lines")

    def __init__(self, values: Mapping[str, Any], **attributes: Any) -> None:
        frozen = {name: tuple(v) if isinstance(v, list) else v for name, v in values.items()}
        object.__setattr__(self, "_values", MappingProxyType(frozen))
        for name in self.__slots__[1:]:
            object.__setattr__(self, name, attributes.pop(name))
        if attributes:
            raise TypeError(f"unexpected attributes: {sorted(attributes)}")

    def __getattr__(self, name: str) -> Any:
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("CarbonSettings is read-only")

    def __delattr__(self, name: str) -> None:
        raise AttributeError("CarbonSettings is read-only")

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return (f"CarbonSettings(role={self.role!r}, instance={self.instance!r}, "
                f"path={self.path!r})")

    def error(self, key: str | None, reason: str) -> ConfigError:
        """A ConfigError about setting ``key``: at its line when the file set it, else named
        by the key (``carbon.conf: KEY: reason``); ``reason`` need not repeat the key."""
        line = self.lines.get(key, 0) if key else 0
        return ConfigError(self.path or "<defaults>", line, reason, key=key)


def _closest(name: str) -> str | None:
    match = difflib.get_close_matches(name, registry.known_names(), n=1, cutoff=0.6)
    return match[0] if match else None


def _check_sections(path: str, role: str, sections: Mapping[str, IniSection]) -> None:
    """Warn about every section no role reads; refuse a misspelling of ``role``'s own section
    when the file lacks the real one (the daemon would run on defaults)."""
    known = sorted(registry.known_roles())
    for name, section in sections.items():
        base = name.split(":", 1)[0]
        if name == DEFAULT_SECTION or base in known:
            continue
        match = difflib.get_close_matches(base, known, n=1, cutoff=0.6)
        hint = match[0] + name[len(base):] if match else None
        if match and match[0] == role and role not in sections:
            raise ConfigError(path, section.line, f"unknown section [{name}]; did you mean "
                              f"[{hint}]? cadent-{role} reads [{role}] and this file has none")
        log.warning("%s:%d: unknown section [%s]%s; its settings are ignored", path,
                    section.line, name, f" (did you mean [{hint}]?)" if hint else "")


def _apply_section(values: dict[str, Any], lines: dict[str, int], path: str, role: str,
                   sections: Mapping[str, IniSection], name: str) -> None:
    """Overlay section ``name`` (and ``[DEFAULT]`` under it) onto ``values``, if it exists;
    ``lines`` records the file line each value came from."""
    section = sections.get(name)
    if section is None:
        return
    entries: dict[str, tuple[str, int, str]] = {}
    default = sections.get(DEFAULT_SECTION)
    for source in (default, section):
        if source is None:
            continue
        for key, raw in source.options.items():
            entries[key] = (raw, source.lines[key], source.name)
    for key, (raw, line, where) in entries.items():
        name_upper = key.upper()
        lines[name_upper] = line
        setting = registry.get_setting(name_upper)
        if setting is None:
            hint = _closest(name_upper)
            log.warning("%s:%d: [%s] unknown setting %s%s (kept as written)", path, line, where,
                        name_upper, f"; did you mean {hint}?" if hint else "")
            values[name_upper] = registry.parse_value("auto", raw)
            continue
        if role not in setting.roles:
            log.info("%s:%d: [%s] %s has no effect for %s", path, line, where, name_upper, role)
        try:
            values[name_upper] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(path, line, f"[{where}] {name_upper}: {exc}") from None


def _apply_overrides(values: dict[str, Any], overrides: Mapping[str, Any]) -> None:
    for key, value in overrides.items():
        if key in PATH_OVERRIDES:
            continue
        setting = registry.get_setting(key)
        if setting is None:
            hint = _closest(key.upper())
            raise ConfigError(_OVERRIDES_NAME, 0, "unknown setting"
                              + (f"; did you mean {hint}?" if hint else ""), key=key)
        if isinstance(value, str):
            try:
                value = setting.parse(value.strip())
            except ValueError as exc:
                raise ConfigError(_OVERRIDES_NAME, 0, str(exc), key=setting.name) from None
        values[setting.name] = value


def _derive_storage_paths(values: dict[str, Any], program: str) -> None:
    storage = values["STORAGE_DIR"]
    for name, path in (("PID_DIR", storage),
                       ("LOG_DIR", os.path.join(storage, "log", program)),
                       ("LOCAL_DATA_DIR", os.path.join(storage, "whisper")),
                       ("WHITELISTS_DIR", os.path.join(storage, "lists"))):
        if values.get(name) is None:
            values[name] = path


def _clean(path: str) -> str:
    return os.path.normpath(os.path.expanduser(path))


def read_carbon_conf(path: str | None, role: str, instance: str | None = None,
                     overrides: Mapping[str, Any] | None = None) -> CarbonSettings:
    """Settings for ``role`` (cache, relay, aggregator, ...) and ``instance`` from ``path``.

    ``path`` None means built-in defaults only. ``overrides`` maps setting names to values
    applied over the file (strings are parsed like file values) plus the path keys of
    :data:`PATH_OVERRIDES` (``pidfile``, ``logdir`` = final LOG_DIR, ``whitelist``, ...).
    An unknown key is a warning naming the closest known one; a bad value, an unreadable
    file or a malformed line raises :class:`ConfigError`.
    """
    if role not in registry.known_roles():
        raise ValueError(f"unknown role {role!r}; known: {sorted(registry.known_roles())}")
    instance = DEFAULT_INSTANCE if instance is None else instance
    overrides = dict(overrides or {})
    program = f"cadent-{role}"
    graphite_root = os.environ.get("GRAPHITE_ROOT") or DEFAULT_GRAPHITE_ROOT

    values = registry.defaults()
    if path is not None:
        path = os.path.abspath(path)
        values["CONF_DIR"] = os.path.dirname(path)
    else:
        values["CONF_DIR"] = os.environ.get("GRAPHITE_CONF_DIR",
                                            os.path.join(graphite_root, "conf"))
    values["STORAGE_DIR"] = os.environ.get("GRAPHITE_STORAGE_DIR",
                                           os.path.join(graphite_root, "storage"))

    sections: dict[str, IniSection] = {}
    if path is not None:
        sections = {section.name: section for section in read_ini(path)}
        _check_sections(path, role, sections)
    lines: dict[str, int] = {}
    _apply_section(values, lines, path or "", role, sections, role)
    _apply_overrides(values, overrides)
    _derive_storage_paths(values, program)
    if instance:
        _apply_section(values, lines, path or "", role, sections, f"{role}:{instance}")
        _apply_overrides(values, overrides)
        suffix = f"{program}-{instance}"
    else:
        suffix = program
    pidfile = overrides.get("pidfile") or os.path.join(values["PID_DIR"], f"{suffix}.pid")
    if overrides.get("logdir"):
        values["LOG_DIR"] = overrides["logdir"]
    elif instance:
        values["LOG_DIR"] = os.path.join(values["LOG_DIR"], suffix)
    _derive_storage_paths(values, program)

    for name in ("CONF_DIR", "STORAGE_DIR", "LOCAL_DATA_DIR", "WHITELISTS_DIR", "PID_DIR",
                 "LOG_DIR"):
        values[name] = _clean(values[name])
    if isinstance(values.get("MAX_CACHE_SIZE"), (int, float)):
        values["CACHE_SIZE_LOW_WATERMARK"] = values["MAX_CACHE_SIZE"] * 0.95

    conf_dir = values["CONF_DIR"]

    def conf_file(key: str, default_name: str) -> str:
        return _clean(overrides.get(key) or os.path.join(conf_dir, default_name))

    return CarbonSettings(
        values,
        lines=MappingProxyType(lines),
        path=path,
        role=role,
        instance=instance,
        program=program,
        pidfile=_clean(pidfile),
        log_dir=values["LOG_DIR"],
        graphite_root=graphite_root,
        whitelist=conf_file("whitelist", "whitelist.conf"),
        blacklist=conf_file("blacklist", "blacklist.conf"),
        relay_rules=conf_file("relay-rules", str(values["RELAY_RULES"])),
        aggregation_rules=conf_file("aggregation-rules", str(values["AGGREGATION_RULES"])),
        rewrite_rules=conf_file("rewrite-rules", str(values["REWRITE_RULES"])),
    )


__all__ = ["CarbonSettings", "DEFAULT_GRAPHITE_ROOT", "DEFAULT_INSTANCE", "PATH_OVERRIDES", "read_carbon_conf"]
