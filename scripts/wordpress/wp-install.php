<?php
/**
 * Installs WordPress without a browser and activates molam-form:
 *   php wp-install.php WPDIR HOST:PORT
 * Prints one JSON line: the active plugins and the orders table's existence.
 */
if ($argc < 3) {
    fwrite(STDERR, "usage: php wp-install.php WPDIR HOST:PORT\n");
    exit(2);
}
$_SERVER['HTTP_HOST'] = $argv[2];
$_SERVER['REQUEST_URI'] = '/';
$_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
define('WP_INSTALLING', true);
require rtrim($argv[1], '/') . '/wp-load.php';

// Pluggable: no "your new site" mail.
function wp_new_blog_notification($blog_title, $blog_url, $user_id, $password) {
}
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
require_once ABSPATH . 'wp-admin/includes/plugin.php';

if (!is_blog_installed()) {
    wp_install('Boutique Teranga', 'admin', 'admin@boutique-teranga.test', false, '', wp_generate_password(24));
}
switch_theme('molam-shop');
$activated = activate_plugin('molam-form/molam-form.php');
if (is_wp_error($activated)) {
    fwrite(STDERR, 'activate_plugin: ' . $activated->get_error_message() . "\n");
    exit(1);
}
global $wpdb;
$table = $wpdb->prefix . 'molam_orders';
echo json_encode(array(
    'active_plugins' => get_option('active_plugins'),
    'orders_table' => $wpdb->get_var("SHOW TABLES LIKE '$table'"),
    'stylesheet' => get_option('stylesheet'),
)), "\n";
