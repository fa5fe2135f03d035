"""Which provider sends a message, and which one takes over when it cannot.

The policy comes from configuration (template parameters DefaultProvider and RoutingRules):
- a request that names a `provider` is pinned to it: only that provider is tried;
- otherwise the first rule that matches the number decides, prefix rules (longest first) before
  network rules, and the default provider where none matches;
- the other provider is the fallback when the first definitively did not take a message.

Rules are written `match=provider`, comma-separated: a match starting with `+` is an E.164 prefix
(`+25411=254sms`), anything else a network name as phonenumbers' carrier data spells it
(`Safaricom=sayasms`, `Airtel=254sms`, `Telkom=254sms`; matched without regard to case)."""

from __future__ import annotations

from dataclasses import dataclass

from tuma.domain.phones import network

PROVIDERS = ("254sms", "sayasms")


class BadRoutingRules(ValueError):
    """The configured rules cannot be read; the message says which one and why."""


@dataclass(frozen=True)
class RoutingPolicy:
    default: str
    prefixes: tuple[tuple[str, str], ...] = ()  # (E.164 prefix, provider), longest prefix first
    networks: tuple[tuple[str, str], ...] = ()  # (network name in lower case, provider)

    def primary(self, number: str) -> str:
        for prefix, provider in self.prefixes:
            if number.startswith(prefix):
                return provider
        if self.networks:
            name = (network(number) or "").lower()
            for wanted, provider in self.networks:
                if name == wanted:
                    return provider
        return self.default

    def chain(self, number: str, pinned: str | None) -> tuple[str, ...]:
        """The providers to try for `number`, in order."""
        if pinned:
            return (pinned,)
        first = self.primary(number)
        return (first, *(p for p in PROVIDERS if p != first))


def policy_from(default: str, rules: str) -> RoutingPolicy:
    if default not in PROVIDERS:
        raise BadRoutingRules(f"default provider {default!r} is not one of {', '.join(PROVIDERS)}")
    prefixes, networks = [], []
    for position, rule in enumerate(r.strip() for r in rules.split(",") if r.strip()):
        match, _, provider = (part.strip() for part in rule.partition("="))
        if not match or provider not in PROVIDERS:
            raise BadRoutingRules(f"routing rule {position + 1} ({rule!r}) must be `<+prefix or network>=<"
                                  f"{' or '.join(PROVIDERS)}>`")
        if match.startswith("+"):
            if not match[1:].isdigit():
                raise BadRoutingRules(f"routing rule {position + 1} ({rule!r}): a prefix is + and digits")
            prefixes.append((match, provider))
        else:
            networks.append((match.lower(), provider))
    prefixes.sort(key=lambda rule: -len(rule[0]))
    return RoutingPolicy(default, tuple(prefixes), tuple(networks))
