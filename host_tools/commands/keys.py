"""`smeter keys`: seal key pairs (ECDSA P-256) for devices: the private key into the device's
configuration, the public key into the registry verifiers read (docs/seals.md)."""
import argparse
import datetime
import json
import secrets
import sys

from edge import p256
from host_tools import exit_codes
from host_tools.seal import pubkeys, write_json

JST = datetime.timezone(datetime.timedelta(hours=9))

HELP = """\
generate: make a new P-256 key pair for a device. The public key is added to the registry
(smeter-pubkeys/1, created if missing; key_no = the device's highest + 1 unless --key-no),
then the private key is written into the agent configuration as seal_key / seal_key_no
(the file is rewritten atomically with mode 0600; its other fields are kept).
retire: mark a key as retired after a JST day: it then verifies only seals of days up to it.
list: print the registry.

A production meter keeps its private key in a secure element and never lets it out; this
project keeps it in the configuration file (docs/seals.md, "Where the private key lives")."""


def register(subparsers):
    p = subparsers.add_parser("keys", help="generate, retire and list device seal keys",
                              description=HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="keys_command", metavar="ACTION")
    sub.required = True
    g = sub.add_parser("generate", help="new key pair: private key into the config, public into the registry")
    g.add_argument("--device", required=True, type=int, metavar="ID", help="device id")
    g.add_argument("--config", required=True, metavar="FILE", help="the device's agent configuration (JSON)")
    g.add_argument("--registry", required=True, metavar="FILE", help="public-key registry (smeter-pubkeys/1)")
    g.add_argument("--key-no", type=int, metavar="N", help="key number 0..8191 (default: next free)")
    g.add_argument("--comment", help="free text stored with the public key")
    g.set_defaults(func=run_generate)
    r = sub.add_parser("retire", help="retire a key after a JST day")
    r.add_argument("--registry", required=True, metavar="FILE")
    r.add_argument("--device", required=True, type=int, metavar="ID")
    r.add_argument("--key-no", required=True, type=int, metavar="N")
    r.add_argument("--after", required=True, metavar="YYYY-MM-DD",
                   help="last JST day the key may have sealed")
    r.set_defaults(func=run_retire)
    ls = sub.add_parser("list", help="print the registry")
    ls.add_argument("--registry", required=True, metavar="FILE")
    ls.set_defaults(func=run_list)


def _fail(msg):
    print("smeter keys: %s" % msg, file=sys.stderr)
    return exit_codes.USAGE


def _load_registry(path, missing_ok):
    try:
        return pubkeys.load(path)
    except FileNotFoundError:
        if missing_ok:
            return pubkeys.Registry()
        raise


def new_private_key():
    """32 bytes, uniformly in 1..N-1 (secrets: the OS's CSPRNG)."""
    return (1 + secrets.randbelow(p256.N - 1)).to_bytes(32, "big")


def run_generate(args):
    try:
        reg = _load_registry(args.registry, True)
        with open(args.config, "rb") as f:
            cfg = json.loads(f.read().decode("utf-8"))
        if not isinstance(cfg, dict):
            raise ValueError("%s: the configuration must be a JSON object" % args.config)
        if "device_id" in cfg and cfg["device_id"] != args.device:
            raise ValueError("%s: device_id is %r, not %d" % (args.config, cfg["device_id"], args.device))
        if not 0 <= args.device < 1 << 64:
            raise ValueError("--device: must be 0..2**64-1")
        used = [k.key_no for k in reg.for_device(args.device)]
        key_no = args.key_no if args.key_no is not None else (max(used) + 1 if used else 0)
        if not 0 <= key_no <= 8191:
            raise ValueError("--key-no: must be 0..8191")
        if key_no in used:
            raise ValueError("%s: device %d already has key %d (rotation takes a new number)"
                             % (args.registry, args.device, key_no))
    except (OSError, ValueError, pubkeys.RegistryError) as x:
        return _fail(str(x))
    priv = new_private_key()
    pub = pubkeys.PubKey(args.device, key_no, p256.public_key(priv),
                         created=datetime.datetime.now(JST).date().isoformat(), comment=args.comment)
    reg.add(pub)
    cfg["seal_key"] = priv.hex()
    cfg["seal_key_no"] = key_no
    try:
        # registry first: a public key without its private key harms nobody, the reverse
        # would make the device sign seals nobody can check
        pubkeys.write(args.registry, reg)
        write_json(args.config, cfg, private=True)
    except OSError as x:
        return _fail("cannot write: %s" % x)
    print("device %d: seal key %d %s written to %s (private) and %s (public)"
          % (args.device, key_no, pub.fingerprint(), args.config, args.registry))
    return exit_codes.OK


def run_retire(args):
    try:
        reg = _load_registry(args.registry, False)
        datetime.date.fromisoformat(args.after)
        k = reg.get(args.device, args.key_no)
        if k is None:
            raise ValueError("%s: device %d has no key %d" % (args.registry, args.device, args.key_no))
        k.retired = args.after
        pubkeys.write(args.registry, reg)
    except (OSError, ValueError, pubkeys.RegistryError) as x:
        return _fail(str(x))
    print("device %d: key %d retired after %s" % (args.device, args.key_no, args.after))
    return exit_codes.OK


def run_list(args):
    try:
        reg = _load_registry(args.registry, False)
    except (OSError, pubkeys.RegistryError) as x:
        return _fail(str(x))
    for k in reg.entries():
        print("device %d key %d %s %s created %s%s" % (
            k.device_id, k.key_no, k.alg, k.fingerprint(), k.created or "?",
            " retired after %s" % k.retired if k.retired else ""))
    return exit_codes.OK
