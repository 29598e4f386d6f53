"""The authenticators IDaaS names, and what each one is in the SIEM vocabularies.

A sign-in names its authenticator in `data.token` with the names of IDaaS's Authentication API (the list
below). OCSF has a closed list of factor types (`auth_factor.factor_type_id`, dictionary.json 1.8.0); a name
it has no type for is 99 Other with a readable IDaaS name, as OCSF asks for 99. ECS has no field for the
method, CIM's `authentication_method` is free text: both get `method`, the factor names joined, so that
"OTP" means the same in every format. A name this table does not know passes through verbatim.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


@dataclass(frozen=True, slots=True)
class AuthFactor:
    """An OCSF 1.8.0 `auth_factor`: `factor_type_id` from the schema's enum and its caption (the source's own
    name for 99, which OCSF asks for instead of the caption "Other")."""

    type_id: int
    type: str


@dataclass(frozen=True, slots=True)
class Authenticator:
    """One IDaaS authenticator name: the factors it consists of, first factor first."""

    name: str
    factors: tuple[AuthFactor, ...]

    @property
    def method(self) -> str:
        """The vendor-neutral name: ECS `entrust_idaas.authentication_method`, CIM `authentication_method`."""
        return " + ".join(factor.type for factor in self.factors)


PASSWORD: Final = AuthFactor(11, "Password")
SECURITY_QUESTION: Final = AuthFactor(2, "Security Question")
OTP: Final = AuthFactor(7, "OTP")
PUSH: Final = AuthFactor(5, "Push Notification")
WEBAUTHN: Final = AuthFactor(10, "WebAuthn")
BIOMETRIC: Final = AuthFactor(4, "Biometric")
EMAIL: Final = AuthFactor(8, "Email")
# OCSF has no type for these: 99 Other with the IDaaS name, readable.
GRID_CARD: Final = AuthFactor(99, "Grid Card")
MACHINE: Final = AuthFactor(99, "Machine")
EXTERNAL: Final = AuthFactor(99, "External")
TEMPORARY_ACCESS_CODE: Final = AuthFactor(99, "Temporary Access Code")
SMART_LOGIN: Final = AuthFactor(99, "Smart Login")
IDENTITY_PROVIDER: Final = AuthFactor(99, "Identity Provider")
USER_CERTIFICATE: Final = AuthFactor(99, "User Certificate")
#: The `…_AND_SECONDFACTOR` names do not say which second factor was used.
SECOND_FACTOR: Final = AuthFactor(99, "Second Factor")

# fmt: off
AUTHENTICATORS: Final[dict[str, Authenticator]] = {
    authenticator.name: authenticator
    for authenticator in (
        Authenticator("MACHINE", (MACHINE,)),
        Authenticator("PASSWORD", (PASSWORD,)),
        Authenticator("EXTERNAL", (EXTERNAL,)),
        Authenticator("KBA", (SECURITY_QUESTION,)),
        Authenticator("TEMP_ACCESS_CODE", (TEMPORARY_ACCESS_CODE,)),
        Authenticator("OTP", (OTP,)),
        Authenticator("GRID", (GRID_CARD,)),
        # A soft or hard token shows a one-time passcode: OCSF's OTP (Hardware Token would be wrong for soft).
        Authenticator("TOKEN", (OTP,)),
        Authenticator("TOKENPUSH", (PUSH,)),
        # FIDO2 security keys, registered and used through WebAuthn.
        Authenticator("FIDO", (WEBAUTHN,)),
        Authenticator("SMARTCREDENTIALPUSH", (PUSH,)),
        Authenticator("PASSWORD_AND_SECONDFACTOR", (PASSWORD, SECOND_FACTOR)),
        Authenticator("SMART_LOGIN", (SMART_LOGIN,)),
        Authenticator("IDP", (IDENTITY_PROVIDER,)),
        Authenticator("PASSKEY", (WEBAUTHN,)),
        Authenticator("IDP_AND_SECONDFACTOR", (IDENTITY_PROVIDER, SECOND_FACTOR)),
        Authenticator("USER_CERTIFICATE", (USER_CERTIFICATE,)),
        Authenticator("FACE", (BIOMETRIC,)),
        # Not in the Authentication API's list; kept because IDaaS has magic-link sign-ins (its audit log's
        # AuthenticationMagicLinkSuccessEvent) and earlier releases mapped the name.
        Authenticator("MAGICLINK", (EMAIL,)),
    )
}
# fmt: on


def describe(name: str) -> Authenticator:
    """The authenticator IDaaS calls `name` (any case); an unknown name is one 99 factor named verbatim."""
    return AUTHENTICATORS.get(name.upper()) or Authenticator(name, (AuthFactor(99, name),))
