#!/usr/bin/perl
# An `http` envelope child in Perl, core modules only, written from the protocol alone.
# Listen on $HTTP_ADDRESS; the proxy POSTs one request object (JSON) to / and reads one
# response object from the reply's body. The reply's own HTTP status does not matter.
use strict;
use warnings;
use IO::Socket::INET;
use JSON::PP;
use MIME::Base64 qw(encode_base64);

my $json = JSON::PP->new->utf8->canonical;
my ($host, $port) = split /:(?=\d+$)/, $ENV{HTTP_ADDRESS} // die "HTTP_ADDRESS is not set\n";
my $server = IO::Socket::INET->new(LocalAddr => $host, LocalPort => $port, Listen => 64,
                                   ReuseAddr => 1) or die "cannot listen: $!\n";
$| = 1;
print "echo.pl listening on $host:$port\n";

sub answer {
    my ($request) = @_;
    if ($request->{uri} =~ m{/teapot}) {
        return { status => 418, headers => { 'Content-Type' => 'application/json' },
                 body => encode_base64($json->encode({ error => 'I am a teapot', lang => 'perl' }), '') };
    }
    my $described = {
        lang    => 'perl',
        method  => $request->{method},
        uri     => $request->{uri},          # path and query string
        headers => $request->{headers},      # [name, value] pairs, repeats kept
        body    => $request->{body} // '',   # base64 of the raw bytes, echoed as it came
    };
    # encode_base64's second argument '' : no line breaks, as the protocol wants.
    return { status => 200, headers => [['Content-Type', 'application/json']],
             body => encode_base64($json->encode($described), '') };
}

while (my $client = $server->accept) {
    # A minimal HTTP/1.1 server: headers up to the blank line, then Content-Length bytes.
    my ($length, $line) = (0, '');
    while (defined($line = <$client>) && $line ne "\r\n") {
        $length = $1 if $line =~ /^Content-Length:\s*(\d+)/i;
    }
    my $body = '';
    read($client, $body, $length - length($body), length($body)) while length($body) < $length;
    next unless length $body;    # a connection that sent nothing: nothing to answer
    my $reply = $json->encode(answer($json->decode($body)));
    print $client "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
                  "Content-Length: ", length($reply), "\r\nConnection: close\r\n\r\n", $reply;
    close $client;
}
