#!/usr/bin/python3
# Reads NetworkManager keyfiles with libnm's own keyfile parser (the code
# NetworkManager uses) and prints what NetworkManager would make of each, as
# one JSON object per file: {"file", "error"} or the connection's settings.
import json
import sys

import gi

gi.require_version("NM", "1.0")
from gi.repository import GLib, NM  # noqa: E402


def read(path):
    kf = GLib.KeyFile()
    kf.load_from_file(path, GLib.KeyFileFlags.NONE)
    con = NM.keyfile_read(kf, "/", NM.KeyfileHandlerFlags.NONE, None, None)
    con.normalize()
    con.verify()
    out = {"id": con.get_id(), "type": con.get_connection_type()}
    w = con.get_setting_wireless()
    if w is not None:
        out["ssid_hex"] = bytes(w.get_ssid().get_data()).hex()
    sec = con.get_setting_wireless_security()
    out["key_mgmt"] = sec.get_key_mgmt() if sec is not None else ""
    out["psk"] = (sec.get_psk() or "") if sec is not None else ""
    x = con.get_setting_802_1x()
    out["eap"] = [x.get_eap_method(i) for i in range(x.get_num_eap_methods())] if x is not None else []
    ip4 = con.get_setting_ip4_config()
    out["ipv4_method"] = ip4.get_method() if ip4 is not None else ""
    out["ipv4_addresses"] = [
        "%s/%d" % (ip4.get_address(i).get_address(), ip4.get_address(i).get_prefix())
        for i in range(ip4.get_num_addresses())
    ] if ip4 is not None else []
    out["ipv4_gateway"] = (ip4.get_gateway() or "") if ip4 is not None else ""
    out["ipv4_dns"] = [ip4.get_dns(i) for i in range(ip4.get_num_dns())] if ip4 is not None else []
    return out


for path in sys.argv[1:]:
    try:
        res = read(path)
    except GLib.Error as e:
        res = {"error": e.message}
    res["file"] = path
    print(json.dumps(res))
