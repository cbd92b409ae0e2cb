#!/usr/bin/env python3
"""Call the test SOAP service's Echo operation with zeep, as an application would.

The WSDL and the endpoint are plain URLs; in the gateway test both point at certgate's
named-service path (http://127.0.0.1:PROXY/svc/NAME/soap?wsdl and .../soap), so certgate adds
the client certificate. --ca/--cert/--key are only for calling the partner directly (the
harness check). Prints one JSON line: {"text", "client_cert_sha256", "zeep"}.
"""

import argparse
import json
import sys

try:
    import requests
    import zeep
    from zeep.transports import Transport
except ImportError as e:  # the test fails on this message; it never skips
    sys.exit(f"python3 zeep is required: pip install zeep ({e})")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--wsdl", required=True, help="URL of the WSDL")
    p.add_argument("--endpoint", required=True, help="SOAP endpoint address to call")
    p.add_argument("--text", required=True, help="what Echo should send")
    p.add_argument("--ca", help="CA file to verify an https partner with")
    p.add_argument("--cert", help="client certificate (PEM, leaf then chain)")
    p.add_argument("--key", help="client key (PEM)")
    a = p.parse_args()

    session = requests.Session()
    # Never a proxy from the environment: the endpoint is certgate itself (or the partner).
    session.trust_env = False
    if a.ca:
        session.verify = a.ca
    if a.cert:
        session.cert = (a.cert, a.key) if a.key else a.cert
    transport = Transport(session=session, timeout=20, operation_timeout=20)
    client = zeep.Client(a.wsdl, transport=transport)
    service = client.create_service("{urn:certgate:test}EchoBinding", a.endpoint)
    result = service.Echo(Text=a.text)
    print(json.dumps({
        "text": result.Text,
        "client_cert_sha256": result.ClientCertSha256,
        "zeep": zeep.__version__,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
