#!/usr/bin/env python3
"""List a routerd's gRPC services through server reflection, with a standard gRPC client (Python grpcio).

What grpcurl would show with `grpcurl -cacert … -cert … -key … HOST:PORT list`; grpcurl is not packaged for
Debian 12. The identity file is the one rtrctl uses (client certificate, private key, router CA in one PEM file).

usage: grpc_list_services.py HOST:PORT IDENTITY.pem
"""
import re
import sys

import grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase


def pem_blocks(text):
    """(block, kind) for each PEM block, in order."""
    return re.findall(r"(-----BEGIN ([A-Z ]+)-----.*?-----END \2-----\n?)", text, re.S)


def main():
    if len(sys.argv) != 3:
        print(__doc__.strip().splitlines()[-1], file=sys.stderr)
        return 2
    target, identity_path = sys.argv[1], sys.argv[2]
    with open(identity_path) as f:
        blocks = pem_blocks(f.read())
    certs = [b for b, kind in blocks if kind == "CERTIFICATE"]
    keys = [b for b, kind in blocks if kind.endswith("PRIVATE KEY")]
    if len(certs) != 2 or len(keys) != 1:
        print(f"{identity_path}: expected two certificates and one private key", file=sys.stderr)
        return 1
    credentials = grpc.ssl_channel_credentials(
        root_certificates=certs[1].encode(), private_key=keys[0].encode(), certificate_chain=certs[0].encode()
    )
    with grpc.secure_channel(target, credentials) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        for service in sorted(ProtoReflectionDescriptorDatabase(channel).get_services()):
            print(service)
    return 0


if __name__ == "__main__":
    sys.exit(main())
