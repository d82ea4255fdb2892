-- Sends one message from probe@DOMAIN through the OpenDKIM milter at inet:PORT@127.0.0.1
-- (`-D port=PORT -D domain=DOMAIN`) and prints the DKIM-Signature header it adds, or "unsigned".
local socket = "inet:" .. port .. "@127.0.0.1"
local conn = mt.connect(socket, 40, 0.25)
if conn == nil then error("cannot connect to " .. socket) end

-- The milter answers ACCEPT (done with this message) as soon as it knows it will not sign.
local function continues()
  return mt.getreply(conn) == SMFIR_CONTINUE
end

local function unsigned()
  mt.echo("unsigned")
  mt.disconnect(conn)
end

mt.conninfo(conn, "localhost", "127.0.0.1")
if not continues() then return unsigned() end
mt.macro(conn, SMFIC_MAIL, "i", "rotor-probe")
mt.mailfrom(conn, "probe@" .. domain)
if not continues() then return unsigned() end
mt.rcptto(conn, "someone@example.net")
if not continues() then return unsigned() end
for _, header in ipairs({
  {"From", "probe@" .. domain},
  {"To", "someone@example.net"},
  {"Subject", "rotor probe"},
  {"Date", "Mon, 23 Nov 2026 12:00:00 +0000"},
}) do
  mt.header(conn, header[1], header[2])
  if not continues() then return unsigned() end
end
mt.eoh(conn)
if not continues() then return unsigned() end
mt.bodystring(conn, "Hello.\r\n")
if not continues() then return unsigned() end
mt.eom(conn)
local signature = mt.getheader(conn, "DKIM-Signature", 0)
if signature == nil then mt.echo("unsigned") else mt.echo(signature) end
mt.disconnect(conn)
