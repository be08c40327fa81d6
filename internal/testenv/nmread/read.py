#!/usr/bin/python3
# Reads NetworkManager keyfiles with libnm's own keyfile parser (the code
# NetworkManager runs) and prints what NetworkManager makes of each file,
# normalized and verified, as one JSON object per file: {"file", "error"}
# or the connection's settings.
import json
import sys

import gi

gi.require_version("NM", "1.0")
from gi.repository import GLib, NM  # noqa: E402


def ip(s):
    if s is None:
        return None
    routes = []
    for i in range(s.get_num_routes()):
        r = s.get_route(i)
        routes.append("%s/%d,%s,%d" % (r.get_dest(), r.get_prefix(), r.get_next_hop() or "", r.get_metric()))
    return {
        "method": s.get_method() or "",
        "addresses": ["%s/%d" % (s.get_address(i).get_address(), s.get_address(i).get_prefix())
                      for i in range(s.get_num_addresses())],
        "gateway": s.get_gateway() or "",
        "dns": [s.get_dns(i) for i in range(s.get_num_dns())],
        "dns_search": [s.get_dns_search(i) for i in range(s.get_num_dns_searches())],
        "routes": routes,
        "ignore_auto_dns": s.get_ignore_auto_dns(),
        "route_metric": s.get_route_metric(),
        "never_default": s.get_never_default(),
    }


def read(path):
    kf = GLib.KeyFile()
    kf.load_from_file(path, GLib.KeyFileFlags.NONE)
    con = NM.keyfile_read(kf, "/", NM.KeyfileHandlerFlags.NONE, None, None)
    con.normalize()
    con.verify()
    c = con.get_setting_connection()
    out = {
        "id": con.get_id(),
        "uuid": con.get_uuid(),
        "type": con.get_connection_type(),
        "interface_name": con.get_interface_name() or "",
        "autoconnect": c.get_autoconnect(),
        "controller": c.get_master() or "",
        "port_type": c.get_slave_type() or "",
    }
    m = con.get_setting(NM.SettingMatch)
    out["match_interface_name"] = list(m.get_interface_names() or []) if m is not None else []
    e = con.get_setting_wired()
    if e is not None:
        out["mac"] = e.get_mac_address() or ""
        out["cloned_mac"] = e.get_cloned_mac_address() or ""
        out["mtu"] = e.get_mtu()
    w = con.get_setting_wireless()
    if w is not None:
        out["ssid_hex"] = bytes(w.get_ssid().get_data()).hex()
        out["hidden"] = w.get_hidden()
        out["mac"] = w.get_mac_address() or ""
        out["mtu"] = w.get_mtu()
    sec = con.get_setting_wireless_security()
    if sec is not None:
        out["key_mgmt"] = sec.get_key_mgmt() or ""
        out["psk"] = sec.get_psk() or ""
        out["psk_flags"] = int(sec.get_psk_flags())
    x = con.get_setting_802_1x()
    out["eap"] = [x.get_eap_method(i) for i in range(x.get_num_eap_methods())] if x is not None else []
    v = con.get_setting_vlan()
    if v is not None:
        out["vlan_id"] = v.get_id()
        out["vlan_parent"] = v.get_parent() or ""
    b = con.get_setting_bond()
    if b is not None:
        opts = {}
        for i in range(b.get_num_options()):
            ok, name, value = b.get_option(i)
            if ok:
                opts[name] = value
        out["bond_options"] = opts
    out["ipv4"] = ip(con.get_setting_ip4_config())
    out["ipv6"] = ip(con.get_setting_ip6_config())
    return out


for path in sys.argv[1:]:
    try:
        res = read(path)
    except GLib.Error as e:
        res = {"error": e.message}
    res["file"] = path
    print(json.dumps(res))
