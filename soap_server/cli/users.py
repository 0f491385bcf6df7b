"""``tfsoap users add|list|remove``: keep the users file (``soap_server.security.users``).

Passwords are read without echo (``getpass``) or, for scripts, as one line from standard input
(``--password-stdin``); they never appear on the command line, where ``ps`` would show them.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import Any

from ..security import (
    BadSubjectError,
    User,
    UsersFileError,
    canonical_subject,
    hash_password,
    load_users,
    save_users,
    subject_index,
    valid_name,
)
from ..settings import SettingsError


def register(sub: Any) -> None:
    p = sub.add_parser("users", help="add, list and remove users of the users file",
                       description="Keep the users file that `tfsoap serve --users-file` reads.")
    users = p.add_subparsers(dest="users_command", required=True, metavar="ACTION")
    default = os.environ.get("TFSOAP_USERS_FILE")

    def users_flag(q: argparse.ArgumentParser) -> None:
        q.add_argument("--users", required=default is None, default=default,
                       help="the users file (or TFSOAP_USERS_FILE)")

    add = users.add_parser("add", help="add a user (or replace one with --replace)")
    add.add_argument("name")
    add.add_argument("--role", action="append", default=[], help="a role (repeat for more)")
    add.add_argument("--password-stdin", action="store_true",
                     help="read the password as one line from standard input")
    add.add_argument("--digest", action="store_true",
                     help="store the password itself (as digest_secret) so that the user may "
                     "use UsernameToken PasswordDigest; the file must then stay mode 600")
    add.add_argument("--cert-subject", action="append", default=[], metavar="DN",
                     help="a client certificate subject (RFC 4514, most specific first, as "
                     "`openssl x509 -noout -subject -nameopt RFC2253` prints it) that "
                     "authenticates as this user through a trusted TLS proxy (repeat for more)")
    add.add_argument("--no-password", action="store_true",
                     help="no password: only a certificate (--cert-subject) authenticates")
    add.add_argument("--replace", action="store_true", help="replace an existing user")
    users_flag(add)
    add.set_defaults(func=cmd_add)
    lst = users.add_parser("list", help="list users, their kind and roles (no secrets)")
    users_flag(lst)
    lst.set_defaults(func=cmd_list)
    rm = users.add_parser("remove", help="remove a user")
    rm.add_argument("name")
    users_flag(rm)
    rm.set_defaults(func=cmd_remove)


def _existing(path: str) -> dict[str, User]:
    return load_users(path) if Path(path).exists() else {}


def cmd_add(args: argparse.Namespace) -> int:
    if not valid_name(args.name):
        raise SettingsError(f"{args.name!r} is not a valid user name (letters, digits, ._@-)")
    for role in args.role:
        if not valid_name(role):
            raise SettingsError(f"{role!r} is not a valid role name")
    users = _existing(args.users)
    if args.name in users and not args.replace:
        raise SettingsError(f"user {args.name!r} exists; use --replace to change it")
    subjects = []
    for subject in args.cert_subject:
        try:
            subjects.append(canonical_subject(subject))
        except BadSubjectError:
            raise SettingsError(f"{subject[:200]!r} is not an RFC 4514 subject DN (like "
                                "\"CN=batch,O=Bank\", no spaces around the commas: as "
                                "`openssl x509 -noout -subject -nameopt RFC2253` prints "
                                "it)") from None
    roles, certs = frozenset(args.role), tuple(subjects)
    if args.no_password:
        if not subjects or args.digest or args.password_stdin:
            raise SettingsError("--no-password needs --cert-subject (and no --digest or "
                                "--password-stdin)")
        user = User(args.name, roles, cert_subjects=certs)
    elif args.digest:
        user = User(args.name, roles, digest_secret=_read_password(args.password_stdin),
                    cert_subjects=certs)
    else:
        user = User(args.name, roles, password_hash=hash_password(
            _read_password(args.password_stdin)), cert_subjects=certs)
    users[args.name] = user
    subject_index(users, args.users)  # a subject naming two users is refused
    save_users(args.users, users)
    print(f"{'replaced' if args.replace else 'added'} user {args.name} ({user.kind}; roles: "
          f"{', '.join(sorted(user.roles)) or '-'}) in {args.users}")
    return 0


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise SettingsError("the passwords differ")
    if not password:
        raise SettingsError("the password is empty")
    if len(password) > 1024:
        raise SettingsError("the password is over 1024 characters")
    return password


def cmd_list(args: argparse.Namespace) -> int:
    users = _existing(args.users)
    for user in sorted(users.values(), key=lambda u: u.name):
        subjects = "".join(f"\t{s}" for s in user.cert_subjects)
        print(f"{user.name}\t{user.kind}\t{','.join(sorted(user.roles)) or '-'}{subjects}")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    users = _existing(args.users)
    if args.name not in users:
        raise UsersFileError(f"no user {args.name!r} in {args.users}")
    del users[args.name]
    save_users(args.users, users)
    print(f"removed user {args.name} from {args.users}")
    return 0
