/* referral widget v1: <referral-share> and <referral-offer>.
   No dependency, no inline script, no inline style: the DOM is built with createElement and
   textContent (no HTML is parsed, so Trusted Types pass too) and each shadow root adopts
   constructed stylesheets (a <style> carrying this script's nonce where a browser has none).
   Its JSON comes from the deployment that served it, without cookies or credentials. */
(() => {
  "use strict";
  if (!window.customElements || customElements.get("referral-share")) return;

  const me = document.currentScript;
  const BASE = me && me.src ? me.src.replace(/\/widget\/v1\/referral\.js([?#].*)?$/, "") : "";
  const NONCE = (me && me.nonce) || "";
  const HEX = /^#[0-9a-f]{6}$/i;
  const REF = /^[A-Za-z0-9-]{1,64}$/;
  const TOKEN = /^[A-Za-z0-9_-]{1,512}$/;
  const NAMES = { ref: "referral_ref", token: "referral_ref_token" };
  const FAILED = {
    en: "The share box could not be shown. Reload the page to try again.",
    sv: "Delningsrutan kunde inte visas. Ladda om sidan för att försöka igen.",
  };
  const CSS = `
:host{display:block;max-width:34rem;color:#1b1b1b;font:inherit;line-height:1.5}
:host([hidden]){display:none}
*{box-sizing:border-box}
.box{background:#fff;border:1px solid #d4d4d4;border-radius:12px;overflow:hidden}
.band{background:var(--brand);color:var(--on-brand);padding:.75rem 1.1rem}
.body{padding:.9rem 1.1rem 1.1rem}
h2{font-size:1.1rem;line-height:1.3;margin:0}
h3{font-size:1rem;margin:1.1rem 0 .3rem}
p{margin:.4rem 0}
.muted{color:#555;font-size:.92rem}
.row{display:flex;flex-wrap:wrap;gap:.5rem;margin-top:.6rem}
input{flex:1 1 12rem;min-width:0;min-height:44px;padding:.4rem .6rem;font:inherit;color:#1b1b1b;background:#fff;border:1px solid #767676;border-radius:8px}
.btn{display:inline-flex;align-items:center;justify-content:center;min-height:44px;padding:.45rem 1rem;border-radius:8px;font:inherit;font-weight:600;text-decoration:none;cursor:pointer}
.primary{background:var(--brand);color:var(--on-brand);border:2px solid var(--brand)}
.shares{display:flex;flex-wrap:wrap;gap:.5rem;list-style:none;margin:.6rem 0 0;padding:0}
.shares .btn{background:#fff;color:#1b1b1b;border:2px solid var(--brand)}
.btn:hover{filter:brightness(.93)}
:focus-visible{outline:3px solid #111;outline-offset:2px}
.qr{display:block;width:160px;height:160px;margin:1rem auto 0}
.rows{list-style:none;margin:0;padding:0}
.rows li{display:flex;justify-content:space-between;gap:1rem;padding:.45rem 0;border-top:1px solid #eee}
.rows li:first-child{border-top:0}
.status{flex-shrink:0;align-self:flex-start;font-size:.85rem;white-space:nowrap;background:#eee;border-radius:999px;padding:.05rem .6rem}
.offer{font-size:1.45rem;font-weight:700;line-height:1.25;margin:.3rem 0 0}
.eyebrow{margin:0;font-weight:600}
@media (prefers-reduced-motion:no-preference){.btn{transition:filter .15s}}`;

  const constructable =
    "adoptedStyleSheets" in Document.prototype && "replaceSync" in CSSStyleSheet.prototype;
  let common = null;

  function styled(root, look) {
    const brand = HEX.test(look.colour) ? look.colour : "#1a7f37";
    const on = HEX.test(look.on_colour) ? look.on_colour : "#ffffff";
    const own = `:host{--brand:${brand};--on-brand:${on}}`;
    if (constructable) {
      if (!common) {
        common = new CSSStyleSheet();
        common.replaceSync(CSS);
      }
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(own);
      root.adoptedStyleSheets = [common, sheet];
      return [];
    }
    const style = el("style", { nonce: NONCE });
    style.textContent = CSS + own;
    return [style];
  }

  function el(tag, attrs, children) {
    const node = document.createElement(tag);
    for (const name in attrs || {}) {
      if (name === "text") node.textContent = attrs.text;
      else if (attrs[name] !== null && attrs[name] !== undefined) node.setAttribute(name, attrs[name]);
    }
    for (const child of children || []) if (child) node.append(child);
    return node;
  }

  function web(url) {
    return typeof url === "string" && /^(https?:)?\/\//i.test(url) ? url : null;
  }

  function langOf(node) {
    const raw = node.getAttribute("lang") || (node.closest("[lang]") || document.documentElement).lang || "";
    const primary = raw.split("-")[0].toLowerCase();
    return /^[a-z]{2,8}$/.test(primary) ? primary : "";
  }

  function getJson(path) {
    return fetch(BASE + path, { credentials: "omit", referrerPolicy: "no-referrer" }).then((r) => {
      if (!r.ok) throw new Error(`referral widget: ${r.status}`);
      return r.json();
    });
  }

  function track(url) {
    if (!web(url)) return;
    fetch(url, { mode: "no-cors", credentials: "omit", keepalive: true, referrerPolicy: "no-referrer" })
      .catch(() => {});
  }

  function tell(node, name, detail) {
    node.dispatchEvent(new CustomEvent(name, { bubbles: true, composed: true, detail }));
  }

  class Widget extends HTMLElement {
    constructor() {
      super();
      this.root = this.attachShadow({ mode: "open" });
      this.loaded = null;
      this.turn = 0;
    }
    connectedCallback() {
      this.later();
    }
    attributeChangedCallback() {
      this.later();
    }
    later() {
      if (this.queued) return;
      this.queued = true;
      queueMicrotask(() => {
        this.queued = false;
        if (this.isConnected) this.update();
      });
    }
    show(look, children) {
      this.root.replaceChildren(...styled(this.root, look), ...children);
    }
  }

  class ReferralShare extends Widget {
    static get observedAttributes() {
      return ["token", "lang"];
    }
    update() {
      const raw = (this.getAttribute("token") || "").trim();
      const token = raw.slice(raw.lastIndexOf("/") + 1);
      const lang = langOf(this);
      const key = `${token} ${lang}`;
      if (key === this.loaded) return;
      this.loaded = key;
      const turn = ++this.turn;
      const query = lang ? `?lang=${lang}` : "";
      getJson(`/widget/v1/share/${encodeURIComponent(token)}${query}`).then(
        (data) => turn === this.turn && this.draw(data),
        () => turn === this.turn && this.failed(lang),
      );
    }
    failed(lang) {
      const text = FAILED[lang] || FAILED.en;
      this.show({}, [el("p", { class: "box body muted", role: "status", lang: FAILED[lang] ? lang : "en", text })]);
    }
    draw(d) {
      const w = d.words;
      const input = el("input", { type: "text", readonly: "", id: "link", "aria-label": w.your_link });
      input.value = d.link;
      const status = el("p", { class: "muted", role: "status", "aria-live": "polite" });
      const copy = el("button", { type: "button", class: "btn primary", text: w.copy });
      copy.addEventListener("click", () => {
        const done = () => {
          status.textContent = w.copied;
          track(d.copy_url);
          tell(this, "referral-share", { channel: "copy" });
        };
        const fallback = () => {
          input.select();
          document.execCommand("copy");
          done();
        };
        if (navigator.clipboard && window.isSecureContext) navigator.clipboard.writeText(d.link).then(done, fallback);
        else fallback();
      });
      const buttons = d.channels.filter((c) => web(c.url)).map((c) => {
        const away = c.channel !== "email" && c.channel !== "sms";
        const a = el("a", {
          class: "btn",
          href: c.url,
          target: away ? "_blank" : null,
          rel: "noopener noreferrer nofollow",
          referrerpolicy: "no-referrer",
          text: c.label,
        });
        a.addEventListener("click", () => tell(this, "referral-share", { channel: c.channel }));
        return el("li", {}, [a]);
      });
      if (navigator.share) {
        const more = el("button", { type: "button", class: "btn", text: w.share_sheet });
        more.addEventListener("click", () => {
          navigator.share({ text: d.share_text, url: d.share_sheet_link }).then(() => {
            track(d.share_sheet_url);
            tell(this, "referral-share", { channel: "share_sheet" });
          }, () => {});
        });
        buttons.push(el("li", {}, [more]));
      }
      const rewards = d.rewards.length
        ? el("ul", { class: "rows", id: "rewards", "aria-labelledby": "rewards-title" }, d.rewards.map((r) =>
            el("li", {}, [
              el("span", {}, [
                el("strong", { text: r.text }),
                el("br"),
                el("span", { class: "muted", text: [r.source, ...r.notes].join(" · ") }),
              ]),
              el("span", { class: "status", text: r.status_text }),
            ])))
        : el("p", { class: "muted", text: w.no_rewards });
      const qr = web(d.qr_url) && el("img", { class: "qr", src: d.qr_url, width: "160", height: "160", alt: w.qr_alt });
      this.show(d.look, [
        el("section", { class: "box", lang: d.look.locale, "aria-labelledby": "title" }, [
          el("div", { class: "band" }, [el("h2", { id: "title", text: w.title })]),
          el("div", { class: "body" }, [
            el("p", { class: "muted", text: w.intro }),
            el("div", { class: "row" }, [input, copy]),
            status,
            el("ul", { class: "shares", "aria-label": w.share_on }, buttons),
            qr,
            el("h3", { id: "rewards-title", text: w.your_rewards }),
            rewards,
          ]),
        ]),
      ]);
    }
  }

  // First-party keeping of the link's code and click token, on the shop's own origin.
  let consent = null; // null: not said this page; true or false once the shop calls

  function readCookie(name) {
    const found = document.cookie.split("; ").find((part) => part.startsWith(name + "="));
    return found ? decodeURIComponent(found.slice(name.length + 1)) : null;
  }

  function recall() {
    const out = {};
    for (const key in NAMES) {
      let value = readCookie(NAMES[key]);
      try {
        const kept = JSON.parse(localStorage.getItem(NAMES[key]) || "null");
        if (!value && kept && kept.expires > Date.now()) value = kept.value;
      } catch (e) {}
      out[key] = value && (key === "ref" ? REF : TOKEN).test(value) ? value : null;
    }
    return out;
  }

  function forget() {
    for (const key in NAMES) {
      document.cookie = `${NAMES[key]}=; Max-Age=0; Path=/; SameSite=Lax`;
      try {
        localStorage.removeItem(NAMES[key]);
      } catch (e) {}
    }
  }

  class ReferralOffer extends Widget {
    static get observedAttributes() {
      return ["lang", "consent"];
    }
    update() {
      const query = new URLSearchParams(location.search);
      let ref = query.get("ref");
      let token = query.get("ref_token");
      ref = ref && REF.test(ref) ? ref : null;
      token = token && TOKEN.test(token) ? token : null;
      if (ref || token) {
        this.pending = { ref, token };
        this.keep();
      } else ({ ref, token } = recall());
      if (!ref && !token) return;
      const lang = langOf(this);
      const key = `${ref} ${token} ${lang}`;
      if (key === this.loaded) return;
      this.loaded = key;
      const turn = ++this.turn;
      const params = new URLSearchParams();
      if (token) params.set("ref_token", token);
      if (ref) params.set("ref", ref);
      if (lang) params.set("lang", lang);
      getJson(`/widget/v1/offer?${params}`).then(
        (data) => turn === this.turn && this.draw(data),
        () => {},
      );
    }
    allowed() {
      return this.getAttribute("consent") !== "required" || consent === true;
    }
    keep() {
      const value = this.pending;
      if (!value || !this.allowed()) return;
      this.pending = null;
      const days = Math.min(Math.max(parseInt(this.getAttribute("days"), 10) || 30, 1), 400);
      const local = this.getAttribute("storage") === "local";
      const secure = location.protocol === "https:" ? "; Secure" : "";
      for (const key in NAMES) {
        if (!value[key]) continue;
        if (local) {
          try {
            localStorage.setItem(NAMES[key], JSON.stringify({ value: value[key], expires: Date.now() + days * 864e5 }));
          } catch (e) {}
        } else {
          document.cookie = `${NAMES[key]}=${value[key]}; Max-Age=${days * 86400}; Path=/; SameSite=Lax${secure}`;
        }
      }
      tell(this, "referral-stored", { ref: value.ref, ref_token: value.token, storage: local ? "local" : "cookie" });
    }
    draw(d) {
      if (!d.offer) {
        this.root.replaceChildren();
        return;
      }
      this.show(d.look, [
        el("section", { class: "box", lang: d.look.locale, "aria-labelledby": "heading" }, [
          el("div", { class: "band" }, [el("p", { class: "eyebrow", text: d.intro })]),
          el("div", { class: "body" }, [
            el("h2", { id: "heading", text: d.heading }),
            el("p", { class: "offer", text: d.offer }),
          ]),
        ]),
      ]);
    }
  }

  /* The shop's consent banner says yes (the offers store what they hold) or no (nothing is
     stored, and what was stored is forgotten). */
  window.referralConsent = (granted) => {
    consent = granted === true;
    if (!consent) forget();
    for (const offer of document.querySelectorAll("referral-offer")) if (offer.keep) offer.keep();
  };

  customElements.define("referral-share", ReferralShare);
  customElements.define("referral-offer", ReferralOffer);
})();
