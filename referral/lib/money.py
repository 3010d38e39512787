"""Money: integer minor units plus an ISO 4217 currency. One bundled exponent table.

Unknown currencies are refused rather than guessed: a wrong exponent is a 100x error.
"""

from __future__ import annotations

from referral.lib.errors import InvalidInput

# ISO 4217 active codes with their minor-unit exponents (2 unless listed elsewhere).
_EXPONENT_0 = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_EXPONENT_3 = "BHD IQD JOD KWD LYD OMR TND"
_EXPONENT_4 = "CLF UYW"
_EXPONENT_2 = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP "
    "BYN BZD CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD "
    "FKP GBP GEL GHS GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD "
    "KZT LAK LBP LKR LRD LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD "
    "NGN NIO NOK NPR NZD PAB PEN PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP "
    "SLE SOS SRD SSP STN SVC SYP SZL THB TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED "
    "VES WST XCD YER ZAR ZMW ZWG"
)

EXPONENTS: dict[str, int] = {
    **{c: 2 for c in _EXPONENT_2.split()},
    **{c: 0 for c in _EXPONENT_0.split()},
    **{c: 3 for c in _EXPONENT_3.split()},
    **{c: 4 for c in _EXPONENT_4.split()},
}


def is_currency(code: str) -> bool:
    return code in EXPONENTS


def exponent(currency: str) -> int:
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise ValueError(f"unknown currency {currency!r}") from None


def to_decimal_string(amount_minor: int, currency: str) -> str:
    """Fixed-point text with the currency's exponent: 1050 EUR -> '10.50', -5 KWD -> '-0.005'."""
    exp = exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, frac = divmod(abs(amount_minor), 10**exp)
    return f"{sign}{whole}.{frac:0{exp}d}" if exp else f"{sign}{whole}"


def require_currency(code: str) -> None:
    """Refuse a currency the exponent table does not know (a 422 naming it)."""
    if not is_currency(code):
        raise InvalidInput(f"unknown currency {code}", code="unknown_currency")
