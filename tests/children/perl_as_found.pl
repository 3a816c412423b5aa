#!/usr/bin/perl
# A one-shot pipe child in Perl as a first try writes it: encode_base64 with its default
# line breaks (every 76 columns, and one at the end) and numbers as header values. The
# proxy takes both (docs/protocol.md, "The response object").
use strict;
use warnings;
use IO::Socket::UNIX;
use JSON::PP;
use MIME::Base64 qw(encode_base64 decode_base64);

my $json = JSON::PP->new->utf8;
my $path = $ENV{PIPE_ADDRESS} // die "PIPE_ADDRESS is not set\n";
unlink $path;
my $server = IO::Socket::UNIX->new(Local => $path, Listen => 16) or die "cannot listen: $!\n";
$| = 1;
print "listening on $path\n";
while (my $client = $server->accept) {
    local $/;
    my $request = $json->decode(<$client>);    # up to the proxy's half-close
    my $body = decode_base64($request->{body}) x 3;    # three times what came: wrapped
    print $client $json->encode({
        status  => 200,
        headers => { 'X-Length' => length($body), 'Content-Type' => 'application/octet-stream' },
        body    => encode_base64($body),
    });
    close $client;
}
