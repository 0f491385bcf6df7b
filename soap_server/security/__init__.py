"""Security: the users file, authentication (HTTP Basic, WS-Security UsernameToken), roles per
model, and the warnings a server that runs open gives at start.

``users`` reads and writes the users file; ``passwords`` hashes with scrypt; ``guard`` checks
credentials (lockout, replay cache, freshness); ``access`` decides what a ``Caller`` may do;
``posture`` says what is open; ``tls`` checks the TLS files and names the caller a client
certificate makes; ``client_certs`` trusts a TLS-terminating proxy's word on a client
certificate and compares subjects. No SOAP and no HTTP here: ``soap.wssecurity`` reads the token
from the SOAP header and ``http.wsgi`` passes the ``Authorization`` header in.
"""

from .access import ANONYMOUS, CALLER_KEY, OPEN_POLICY, AccessPolicy, Caller, parse_model_roles
from .client_certs import (
    BadSubjectError,
    ClientCertificate,
    TrustedProxies,
    canonical_subject,
    subject_key,
)
from .guard import Guard, UsernameToken
from .passwords import hash_password, verify_password
from .posture import security_warnings
from .tls import TLS_CLIENT, certificate_caller, check_tls_files
from .users import (
    User,
    UsersFileError,
    UserStore,
    load_users,
    save_users,
    subject_index,
    valid_name,
)

__all__ = [
    "ANONYMOUS", "CALLER_KEY", "OPEN_POLICY", "TLS_CLIENT", "AccessPolicy", "BadSubjectError",
    "Caller", "ClientCertificate", "Guard", "TrustedProxies", "User", "UserStore",
    "UsernameToken", "UsersFileError", "canonical_subject", "certificate_caller",
    "check_tls_files", "hash_password", "load_users", "parse_model_roles", "save_users",
    "security_warnings", "subject_index", "subject_key", "valid_name", "verify_password",
]
